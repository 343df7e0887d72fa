// Command psa evaluates pod templates with the upstream Pod Security admission evaluator, the
// same code the API server runs, so `gitops validate` reports what admission would refuse.
//
// It reads one JSON object per line on stdin, {"id": ..., "metadata": {...}, "spec": {...}},
// and writes one line per pod on stdout: {"id": ..., "violations": [{"check", "reason",
// "detail"}]}. Every pod of a run goes through one process.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

type pod struct {
	ID       string            `json:"id"`
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     corev1.PodSpec    `json:"spec"`
}

type violation struct {
	Check  string `json:"check"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

type verdict struct {
	ID         string      `json:"id"`
	Violations []violation `json:"violations"`
	Error      string      `json:"error,omitempty"`
}

func main() {
	level := flag.String("level", "restricted", "Pod Security level: privileged, baseline or restricted")
	version := flag.String("version", "latest", "Kubernetes minor version of the policy, e.g. v1.34")
	flag.Parse()
	parsedLevel, err := api.ParseLevel(*level)
	if err != nil {
		fail(err)
	}
	parsedVersion, err := api.ParseVersion(*version)
	if err != nil {
		fail(err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		fail(err)
	}
	lv := api.LevelVersion{Level: parsedLevel, Version: parsedVersion}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	encoder := json.NewEncoder(out)
	for in.Scan() {
		var p pod
		result := verdict{Violations: []violation{}}
		if err := json.Unmarshal(in.Bytes(), &p); err != nil {
			result.Error = err.Error()
		} else {
			result.ID = p.ID
			for _, check := range evaluator.EvaluatePod(lv, &p.Metadata, &p.Spec) {
				if !check.Allowed {
					result.Violations = append(result.Violations, violation{
						Check:  check.ForbiddenReason,
						Reason: check.ForbiddenReason,
						Detail: check.ForbiddenDetail,
					})
				}
			}
		}
		if err := encoder.Encode(result); err != nil {
			fail(err)
		}
	}
	if err := in.Err(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "psa: %v\n", err)
	os.Exit(2)
}
