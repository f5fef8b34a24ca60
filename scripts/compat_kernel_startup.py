"""IPython startup file for the notebook kernel under `make test-compat` only: drops one known log line.

torch's CUDA builds log ``No CUDA runtime is found, using CUDA_HOME='/usr/local/cuda'`` (logger
``torch.utils.cpp_extension``, level WARNING) when ``torch.utils.benchmark`` is imported on a machine that
has a CUDA toolkit but no GPU. With no logging handler configured, Python prints it to stderr, so the
notebook's import cell gains a stderr output that strict nbval rejects. The line describes the test
machine (a toolkit, no GPU), not the course: a learner's notebook already says which device it runs on.

Only a record with exactly that message template from exactly that logger is dropped; every other warning
(from that logger or any other, and Python's ``warnings``) still reaches the cell and fails strict nbval.
Learners never load this file: ``scripts/compat.py`` puts it in the compat kernel's own IPython directory.
"""
import logging

NO_CUDA_RUNTIME = "No CUDA runtime is found, using CUDA_HOME='%s'"


class DropNoCudaRuntimeLine(logging.Filter):
    """Refuse exactly the "No CUDA runtime is found" record; pass everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "torch.utils.cpp_extension" and record.msg == NO_CUDA_RUNTIME)


logging.getLogger("torch.utils.cpp_extension").addFilter(DropNoCudaRuntimeLine())
