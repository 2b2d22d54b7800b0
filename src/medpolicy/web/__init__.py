"""The reviewer workbench: server-rendered pages where nurses and physicians review requests.

`router` is mounted by the service (`medpolicy.service.app.create_app`) at `/`.

Pages, one module per job: `session_pages` (sign-in, sign-out, static files), `queue_page` (the
queue), `request_pages` (a request's page: answers, preview, corrections), `decision_pages` (approve,
deny, request information, route; the letter), `policy_pages` (the policy browser), `admin_pages`
(accounts, feedback), `casework_pages` (take/assign, notes, peer-to-peer), `documents`,
`extraction_review` (proposed facts beside their evidence: accept, change, reject), `reports`
(CMS-0057-F metrics). Shared by the pages: `views` (the router, templates, the workbench's state,
sign-in and CSRF checks, error pages).

Beside them: `users` (accounts, sessions, lock-out), `clock` (the queue's due-time clock), `present`
(what the pages show), `letters` (determination letters, HTML and PDF), `policy_view` (the policy
browser), `cli` (`add_user`, `seed_demo_users`), `settings`; `plan` (the plan's configuration),
`letter_parts`, `denials` (the denial pick-list), `assignment` (queue filters), `reviewer_context`,
`corrections` (the correction form and how corrections are shown).
"""

from medpolicy.web import (
    admin_pages,
    casework_pages,
    decision_pages,
    documents,
    extraction_review,
    policy_pages,
    queue_page,
    reports,
    request_pages,
    session_pages,
)
from medpolicy.web.views import configure, router

for _pages in (
    session_pages,
    queue_page,
    request_pages,
    decision_pages,
    policy_pages,
    admin_pages,
    casework_pages,
    documents,
    extraction_review,
    reports,
):  # pages in their own modules, one router
    router.include_router(_pages.router)

__all__ = ["configure", "router"]
