"""The tickets pages (留言工单): the filtered list with its status tabs, and one ticket.

Thin views, like every page of the shell: the page and its ES module
(``static/js/tickets.js``, ``static/js/ticket.js``) read ``/api/v1/tickets`` in
the browser. The filters live in the list page's query string, so a reload, a
bookmark and the way back from a ticket keep them. A ticket outside the
agent's scope is a 404 page here too, as it is in the API.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask

from meiqia.models.tickets import PRIORITIES
from meiqia.models.tickets import SOURCES
from meiqia.models.tickets import STATUSES
from meiqia.services import permissions
from meiqia.services.tickets import TRANSITIONS
from meiqia.web import security
from meiqia.web.workspace import add_nav
from meiqia.web.workspace import render_page

bp = Blueprint("tickets_pages", __name__, template_folder="templates")

#: After the workspace and history in the top navigation.
NAV_ORDER = 20


@bp.get("/tickets", endpoint="tickets")
def ticket_list() -> Any:
    """The list; statuses, priorities and sources are the server's own lists."""
    return render_page("tickets/list.html", "nav.tickets", "tickets", statuses=STATUSES,
                       priorities=PRIORITIES, sources=SOURCES)


@bp.get("/tickets/<int:ticket_id>", endpoint="ticket")
def ticket_page(ticket_id: int) -> Any:
    """One ticket; the allowed status changes come from the service's rules."""
    agent = security.session_agent()
    if agent is not None:
        permissions.get_ticket(agent, ticket_id)  # 404 outside the scope
    return render_page("tickets/ticket.html", "nav.tickets", "tickets", ticket_id=ticket_id,
                       statuses=STATUSES, priorities=PRIORITIES,
                       transitions=in_life_order())


def in_life_order() -> dict[str, list[str]]:
    """Each status's allowed next ones in the ticket's life (``STATUSES``: 待处理, 处理中,
    已解决, 已关闭), as every list of statuses shows them; sorted by their stored names,
    the menu put 已关闭 before 处理中."""
    return {k: [s for s in STATUSES if s in v] for k, v in TRANSITIONS.items()}


def init_app(app: Flask) -> None:
    """Register the pages and put "tickets" in the top navigation."""
    app.register_blueprint(bp)
    add_nav("tickets_pages.tickets", "nav.tickets", "tickets", NAV_ORDER)
