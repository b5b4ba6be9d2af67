"""The WeChat webhook: verification, messages and events in every encryption mode.

Registering it gives the app a RouteCache and makes the app's sessions invalidate it on commit."""

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("wechat", __name__)


@bp.record_once
def _route_cache(state: BlueprintSetupState) -> None:
    from app.scenes import RouteCache, watch_routing_changes

    app = state.app
    app.extensions["wxsurvey_routes"] = RouteCache()
    watch_routing_changes(app.extensions["wxsurvey_db"].session, app.extensions["wxsurvey_redis"]["text"])


from app.wechat import webhook  # noqa: E402,F401
