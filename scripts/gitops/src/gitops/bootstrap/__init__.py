"""`gitops bootstrap`: the plan of what a GCP project needs (pure), and the shell that observes
the project and applies the plan with gcloud and kubectl."""
