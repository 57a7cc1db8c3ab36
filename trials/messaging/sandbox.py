"""The sandbox user-written message templates render in: Django's template language with nothing but a whitelist.

Why Django's engine and not Jinja2's SandboxedEnvironment: staff already write Django syntax in every stored
template, and what a sandbox must stop is reach — reading attributes and calling methods of live objects,
loading other templates or tag libraries, printing the context. Here the engine itself knows only the allowed
tags and filters (`SANDBOX` is built without Django's default builtins, so `load`, `include`, `extends`, `debug`,
`url`, `for` and every other tag or filter is a syntax error at render time, however the text got into the
database), it has no template loaders, and the context holds plain values only (strings, numbers, dates and
two dicts of them), so a variable lookup never reaches a method. Jinja2's sandbox checks attribute access on
arbitrary objects at run time, which a context of plain values does not need.

`EXPLAINING` parses with the full language so that validation can name what is not allowed ("the tag 'load' is
not allowed") instead of showing the parser's bare "invalid block tag"; it never renders.
"""

from __future__ import annotations

from django.template import Engine, Library, defaultfilters, defaulttags

ALLOWED_TAGS = ("if", "elif", "else", "endif", "comment")
ALLOWED_FILTERS = ("default", "upper", "lower", "title", "capfirst", "floatformat", "date", "pluralize", "yesno")

register = Library()
register.tag("if", defaulttags.do_if)
register.tag("comment", defaulttags.comment)
for _name in ALLOWED_FILTERS:
    register.filter(_name, defaultfilters.register.filters[_name])


class _WhitelistEngine(Engine):
    """An engine whose only builtins are the ones it is given (Django adds its defaults to any engine)."""

    default_builtins: list[str] = []


SANDBOX = _WhitelistEngine(
    dirs=[], app_dirs=False, loaders=[], libraries={}, builtins=[__name__], string_if_invalid="", autoescape=True
)
EXPLAINING = Engine(dirs=[], app_dirs=False, loaders=[], libraries={}, string_if_invalid="", autoescape=True)
