"""The fleet provisioning template (body file + checks) and its provisioning role."""
