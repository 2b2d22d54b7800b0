"""The reviewer workbench: server-rendered pages where nurses and physicians review requests.

`router` is mounted by the service (`medpolicy.service.app.create_app`) at `/`. Modules: `views`
(the pages), `users` (accounts, sessions, lock-out), `clock` (the queue's due-time clock), `present`
(what the pages show), `letters` (determination letters, HTML and PDF), `policy_view` (the policy
browser), `cli` (`add_user`, `seed_demo_users`), `settings`.
"""

from medpolicy.web.views import configure, router

__all__ = ["configure", "router"]
