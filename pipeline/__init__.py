"""merflow: micro-expression recognition (MER-RCNN) as a staged, cached, auditable pipeline."""

__version__ = "0.1.0"
