"""The ablation sweep: per-job state (job.json), evaluation after training, and the report."""
