"""The Banking77 distillation benchmark: replay teacher, traffic driver, report."""
