// A real OpenID provider for the tests (oidc-provider, a certified implementation):
// one confidential client that must use PKCE, a `groups` claim, three accounts.
// The development interactions give the browser a sign-in form (any password) and a
// consent page. Usage: PORT=... REDIRECT_URI=... node tests/oidc/provider.mjs
// It prints "ready" once it listens on 127.0.0.1:PORT.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const redirectUri = process.env.REDIRECT_URI;
if (!port || !redirectUri) {
  console.error('PORT and REDIRECT_URI are required');
  process.exit(2);
}

const accounts = {
  alice: ['archnest-admins'],
  bob: ['archnest-viewers'],
  eve: ['others'],
};

const configuration = {
  clients: [
    {
      client_id: process.env.CLIENT_ID || 'archnest',
      client_secret: process.env.CLIENT_SECRET || 'archnest-test-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // PROVIDER_GROUPS_IN=userinfo keeps the groups out of the ID token (the relying party
  // must then read them from the userinfo endpoint, as with some providers).
  conformIdTokenClaims: process.env.PROVIDER_GROUPS_IN === 'userinfo',
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: id,
          email: `${id}@example.test`,
          email_verified: true,
          groups: accounts[id],
        };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['archnest-test-provider-cookie-key'] },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
const server = provider.listen(port, '127.0.0.1', () => {
  console.log('ready');
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
