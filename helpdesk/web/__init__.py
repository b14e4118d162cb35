"""HTTP plumbing shared by every domain: app context, auth, problems, middleware."""
