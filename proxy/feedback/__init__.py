"""User feedback on logged requests: ratings and corrections (issue 15).

`store` holds the SQL over the ``feedback`` table (shared by the server and the CLI),
`service` the server side of ``POST /v1/feedback`` (ownership, redaction, the write).
The trainer reads feedback from the training snapshot (`proxy.logstore.snapshot`),
never from here.
"""
