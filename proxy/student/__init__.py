"""The embedded student: default model materialisation and the vLLM child-process supervisor."""

from proxy.student.model import StudentModelError, default_model_dir, resolve_base_model
from proxy.student.supervisor import VLLMSupervisor

__all__ = ["StudentModelError", "VLLMSupervisor", "default_model_dir", "resolve_base_model"]
