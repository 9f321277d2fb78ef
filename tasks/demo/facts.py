"""What the demo provider's pages tell a newcomer, in one place: its paths, its one user and
its one OAuth 2 client. None of these is a secret: they are printed on ``/demo/``."""

from __future__ import annotations

PREFIX = "/demo"
AUTHORIZE_PATH = f"{PREFIX}/oauth/authorize"
TOKEN_PATH = f"{PREFIX}/oauth/token"
ISSUER_PATH = f"{PREFIX}/oauth"
SHOP_PATH = f"{PREFIX}/shop"
WOO_AUTHORIZE_PATH = f"{SHOP_PATH}/wc-auth/v1/authorize"
API_PATH = f"{PREFIX}/api"

# HTTP Basic for demo-basic (contract §13: "the username demo and the password demo").
USERNAME = "demo"
PASSWORD = "demo"
USER_NAME = "Demo User"

# The one registered OAuth 2 client: it may use the authorization code (with PKCE S256, to
# authq's redirect URI only) and the client credentials grants.
CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-secret"
SCOPES = ("read", "write")
