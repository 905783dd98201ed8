"""Deployment: the reverse proxy in front of registry instances (deploy/README.md)."""
