"""The reviewer workbench: server-rendered pages where nurses and physicians review requests.

`router` is mounted by the service (`medpolicy.service.app.create_app`) at `/`. Modules: `views`
(the pages), `users` (accounts, sessions, lock-out), `clock` (the queue's due-time clock), `present`
(what the pages show), `letters` (determination letters, HTML and PDF), `policy_view` (the policy
browser), `cli` (`add_user`, `seed_demo_users`), `settings`; `plan` (the plan's configuration),
`letter_parts`, `denials` (the denial pick-list), `assignment` (queue filters), `reviewer_context`,
`casework_pages` (take/assign, notes, peer-to-peer), `documents`, `extraction_review` (proposed facts
beside their evidence: accept, change, reject), `reports` (CMS-0057-F metrics).
"""

from medpolicy.web import casework_pages, documents, extraction_review, reports
from medpolicy.web.views import configure, router

for _pages in (
    casework_pages,
    documents,
    extraction_review,
    reports,
):  # pages in their own modules, one router
    router.include_router(_pages.router)

__all__ = ["configure", "router"]
