"""The ablation sweep: evaluation after training and the report (per-run state: ``santa.runs``)."""
