"""Tasks in the traffic: which kind of call a request is (its identity), the user's
per-task overrides, and resolving both for one request. The rule is in
`proxy.tasks.identity` and docs/tasks.md."""
