"""Deployment of the distributed mode: the nginx gateway template, the process runner
(`python -m deploy.stack`), the Dockerfile and the PostgreSQL init script."""
