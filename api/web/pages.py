"""The pages' HTML: the templates in ``templates/`` filled with escaped values.

The server writes what it knows when the page is asked for (who is looking, the filters, which job);
the jobs, nodes and output come afterwards from the API, through the page's script.
"""

from __future__ import annotations

import functools
from html import escape
from pathlib import Path
from string import Template

from conductor import jobs
from conductor.auth import Caller

TEMPLATES = Path(__file__).parent / "templates"
#: The queue page's state filter: the default view (active jobs and those that ended lately), every
#: job, or one state.
STATE_CHOICES = [("", "Pending, running and ended in the last hour"), ("ALL", "Every job")] + [
    (state.value, state.value) for state in jobs.JobState]


@functools.cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _fill(template: str, /, **values: object) -> str:
    """The template with every value escaped, except those whose name ends in ``_html``."""
    return _template(template).substitute(
        {key: value if key.endswith("_html") else escape(str(value)) for key, value in values.items()})


def layout(title: str, content_html: str, *, viewer: Caller, auth_enabled: bool, current: str,
           data: dict[str, object], script: str) -> str:
    """A whole page: the header (the pages, who is looking), the content, and its script.

    ``data`` becomes the ``data-*`` attributes the script reads (no inline script: the pages' CSP)."""
    links = "".join(f'<a href="{href}"{" aria-current=page" if name == current else ""}>{label}</a>'
                    for name, href, label in (("queue", "/", "Queue"),
                                              ("nodes", "/web/nodes", "Nodes and partitions")))
    header = f'<nav>{links}</nav>\n<div class="who">{_who(viewer, auth_enabled)}</div>'
    attributes = "".join(f' data-{escape(key)}="{escape(str(value))}"' for key, value in data.items())
    scripts = "".join(f'<script src="/web/static/{escape(name)}"></script>\n' for name in ("common.js", script))
    return _fill("page.html", title=title, header_html=header, main_html=f' id="page"{attributes}',
                 content_html=content_html, scripts_html=scripts)


def _bare(title: str, content_html: str) -> str:
    """A page without the pages' header and scripts: for someone not signed in, or nothing to show."""
    return _fill("page.html", title=title, header_html="", main_html=' class="narrow"', content_html=content_html,
                 scripts_html="")


def _who(viewer: Caller, auth_enabled: bool) -> str:
    if not auth_enabled:
        return '<span class="note">AUTH=none: every job is shown</span>'
    role = " (admin: every job)" if viewer.admin else ""
    return _fill("who.html", name=viewer.name, role=role)


def queue(viewer: Caller, *, state: str, user: str, partition: str) -> str:
    """The queue page's content: its filters, as given in the page's address."""
    options = "".join(f'<option value="{escape(value)}"{" selected" if value == state else ""}>{escape(label)}'
                      f"</option>" for value, label in STATE_CHOICES)
    if viewer.admin:
        user_html = f'<input name="user" value="{escape(user)}" placeholder="any" autocomplete="off">'
    else:  # the API shows a user only their own jobs, whatever the filter says
        user_html = f'<input name="user" value="{escape(viewer.name)}" disabled>'
    return _fill("queue.html", state_options_html=options, user_input_html=user_html, partition=partition)


def nodes() -> str:
    return _fill("nodes.html")


def job(job: jobs.Job) -> str:
    return _fill("job.html", job_id=job.id, display_id=job.display_id, name=job.spec.name)


def login(*, error: str, next_path: str) -> str:
    """The sign-in page (AUTH=token and no valid session cookie)."""
    return _bare("Sign in", _fill("login.html", error=error, hidden=" hidden" if not error else "", next=next_path))


def message(title: str, text: str, *, link: str = "/", link_text: str = "Back to the queue") -> str:
    """A page that only says something: not found, no Ray task."""
    return _bare(title, _fill("message.html", title=title, text=text, link=link, link_text=link_text))
