"""What tasks call: create jobs, run one item, roll job status up from items, read reports."""
