"""The audit record: notebooks run by papermill, their HTML, manifests, chain, audit, charts."""
