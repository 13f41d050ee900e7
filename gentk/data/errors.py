"""Errors the data loaders raise: each names the path and the layout that was expected."""


class DataError(Exception):
    """Missing or malformed data. The message names the path and the expected layout."""

    def __init__(self, path, problem, layout=None):
        self.path = str(path)
        message = f"{path}: {problem}"
        if layout:
            message += f" (expected {layout})"
        super().__init__(message)
