"""A Constant Contact v3 sandbox: the API and its authorization server, in memory.

Built from Constant Contact's public API reference and its official, OpenAPI-generated client
libraries (``constant-contact-api-client`` on PyPI, ``constant-contact-v3api-client-php``);
the facts it encodes are listed with their sources in ``shared/providers.md`` §4. It serves:

* the authorization server (``/oauth2/default/v1/authorize|token|revoke``): authorization code
  flow with PKCE (S256), single-use codes valid 5 minutes, client id/secret checks, access
  tokens with a configurable lifetime (24 h by default), refresh tokens that **rotate** (a used
  one is invalid afterwards; issuing tokens expires the earlier refresh tokens of the same app
  and account) or are long-lived, and expire after 180 idle days; revocation; 1 request/s;
* the API under ``/v3``: account summary, contacts (list with filters and cursor paging, create,
  get, replace, delete, ``sign_up_form`` upsert), custom fields, lists, and the bulk activities
  ``contacts_json_import``, ``add_list_memberships``, ``remove_list_memberships`` and
  ``contact_delete`` whose state moves ``initialized → processing → completed`` one step per poll,
  or all at once when ``activity_seconds`` have passed on the sandbox clock;
* the limits of a standard API key: 4 requests per second and 10,000 per day (429 with a
  ``Retry-After`` header: CC does not document one, the sandbox sends it so clients can be
  tested both ways — see ``retry_after``);
* fault injection: ``error_rate`` (a fraction of API requests answered 500/503 before they are
  processed) and ``burst_429`` (that many consecutive 429s), from a seeded RNG.

Errors have CC's shape, a JSON list of ``{"error_key", "error_message"}``; the authorization
server answers ``{"error", "error_description"}``. Where the reference is silent the sandbox
picks the stricter reading and says so (``[INFERRED]`` below).

Use :meth:`ConstantContactSandbox.transport` for an in-process ``httpx`` transport, or
:meth:`ConstantContactSandbox.serve` for a real HTTP server on loopback. The ``seed_contacts``,
``edit``, ``unsubscribe``, ``delete`` … helpers act as a person in CC's own UI would.
"""

from contactsync.sandbox.constantcontact.model import (
    API_PREFIX,
    AUTH_PREFIX,
    ApiError,
    App,
    JsonDict,
    LoggedRequest,
    ManualClock,
    OAuthError,
    SandboxRequest,
    SandboxResponse,
    iso,
    parse_iso,
    s256,
)
from contactsync.sandbox.constantcontact.server import ConstantContactSandbox
from contactsync.sandbox.serving import ServedSandbox

__all__ = [
    "API_PREFIX",
    "AUTH_PREFIX",
    "ApiError",
    "App",
    "ConstantContactSandbox",
    "JsonDict",
    "LoggedRequest",
    "ManualClock",
    "OAuthError",
    "SandboxRequest",
    "SandboxResponse",
    "ServedSandbox",
    "iso",
    "parse_iso",
    "s256",
]
