"""The OAuth redirect URI: the provider sends the browser back here after "Sign in"."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from contactsync.sync import oauth, sources
from contactsync.web.deps import Admin, Env
from contactsync.web.render import redirect

router = APIRouter()


@router.get("/oauth/callback")
def oauth_callback(
    env: Env, session: Admin, state: str = "", code: str | None = None, error: str | None = None
) -> Response:
    draft = oauth.complete(env, session.id, state, code, error)
    if draft.source_id is None:
        return redirect("/sources/new", draft=draft.id, notice="signed_in")
    # an existing source: its credentials become the ones used to sign in, with the new tokens
    sources.update_source(env, session.user.workspace_id, draft.source_id, {"config": dict(draft.secrets)})
    oauth.drop_draft(env, draft.id)
    return redirect(f"/sources/{draft.source_id}/settings", notice="signed_in")
