"""The mixed-traffic benchmark: Banking77, CLINC150, SNIPS and free-form replies at once."""
