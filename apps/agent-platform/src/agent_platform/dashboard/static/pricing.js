// What a run's tokens cost, at Anthropic's list prices in US dollars per million tokens.
// A model missing here shows no cost rather than a wrong one.

const PER_MILLION = {
  "claude-opus-4-5": { input: 5, output: 25 },
  "claude-opus-4-1": { input: 15, output: 75 },
  "claude-opus-4": { input: 15, output: 75 },
  "claude-sonnet-4-5": { input: 3, output: 15 },
  "claude-sonnet-4": { input: 3, output: 15 },
  "claude-3-7-sonnet": { input: 3, output: 15 },
  "claude-haiku-4-5": { input: 1, output: 5 },
  "claude-3-5-haiku": { input: 0.8, output: 4 },
};

// Writing to the prompt cache costs 1.25× input, reading from it 0.1× input.
const CACHE_WRITE = 1.25;
const CACHE_READ = 0.1;

function priceOf(model) {
  const name = Object.keys(PER_MILLION)
    .sort((a, b) => b.length - a.length)
    .find((known) => model === known || model.startsWith(`${known}-`));
  return name ? PER_MILLION[name] : null;
}

export function cost(model, usage) {
  const price = priceOf(model || "");
  if (!price || !usage) return null;
  const input =
    usage.input_tokens +
    usage.cache_creation_input_tokens * CACHE_WRITE +
    usage.cache_read_input_tokens * CACHE_READ;
  return (input * price.input + usage.output_tokens * price.output) / 1e6;
}

export function totalTokens(usage) {
  if (!usage) return 0;
  return (
    usage.input_tokens +
    usage.output_tokens +
    usage.cache_creation_input_tokens +
    usage.cache_read_input_tokens
  );
}
