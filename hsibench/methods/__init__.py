"""Fusion methods: the interface, the knowledge modes, and the registry."""
from .base import (
    KNOWLEDGE_MODES,
    Context,
    FusionResult,
    InputError,
    Method,
    MethodError,
    NotApplicable,
    run_method,
    validate_inputs,
)
from .registry import (
    EstimatorMissing, create_method, get_estimator, get_method, list_methods, method_table, register,
    register_estimator, unregister,
)

__all__ = [
    "KNOWLEDGE_MODES", "Context", "FusionResult", "InputError", "Method", "MethodError", "NotApplicable",
    "get_estimator", "register_estimator", "run_method", "validate_inputs",
    "create_method", "get_method", "list_methods", "method_table", "register", "unregister", "EstimatorMissing",
]
