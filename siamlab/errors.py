"""User-facing errors: one sentence naming the field, the value and the fix."""


class SiamlabError(Exception):
    """An error caused by user input or the environment, shown as a single sentence (no traceback)."""


class ConfigError(SiamlabError):
    """A configuration field has a bad name or value."""


class DataError(SiamlabError):
    """A dataset is missing, corrupt or of the wrong shape."""


def bad_value(field: str, value, allowed: str) -> ConfigError:
    return ConfigError(f"{field}={value!r} is not valid: expected {allowed}.")


def unknown_name(field: str, value, valid) -> ConfigError:
    names = ", ".join(sorted(valid))
    return ConfigError(f"unknown {field} {value!r}; valid names are: {names}.")
