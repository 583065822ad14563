/**
 * One error for minted credentials, with a fixed message per code: a token endpoint's answer, a
 * key or a token is never part of a message. `oauthError` is the endpoint's `error` code when it
 * is one of the plain words RFC 6749 §5.2 defines (never its free-text description).
 */
export type CredentialErrorCode =
  | 'bad-endpoint' // not https (or http on a loopback host), userinfo, a fragment
  | 'bad-key' // not a private key Keyhole can sign with
  | 'encrypted-key' // a passphrase-protected PEM: export it without one
  | 'weak-key' // RSA under 2048 bits
  | 'redirect' // the token endpoint answered with a redirect (never followed)
  | 'timeout'
  | 'network'
  | 'too-large' // the answer is over MAX_TOKEN_RESPONSE_BYTES
  | 'not-json'
  | 'http-status' // an error status with no OAuth error in it
  | 'oauth-error' // an OAuth error answer (RFC 6749 §5.2)
  | 'invalid-grant' // the grant (refresh token, assertion) is dead: the secret needs attention
  | 'no-access-token'
  | 'bad-token' // a token (access or refresh) that cannot go in a header
  | 'bad-token-type' // not a bearer token
  | 'bad-expires-in' // not a positive number of seconds within bounds
  | 'not-refresher' // another device holds the refresher role: this one never spends the refresh token
  | 'bad-key-file' // not a Google service account key file (type, client_email, private_key, token_uri)
  | 'bad-aws-key' // not an AWS access key id and secret access key of the documented shapes
  | 'aws-error' // AWS refused the request (its error code word is in the detail)
  | 'clock-skew' // AWS says the request's time is too far from its own (retried once with the server's date)
  | 'not-synced' // a distant kind in a vault this device does not sync to a distant vault
  | 'distant-refused'; // the distant vault refused: no policy of that engine gives this device that role

const MESSAGES: Record<CredentialErrorCode, string> = {
  'bad-endpoint': 'the token endpoint must be an https URL (http only on a loopback host), without credentials or fragment',
  'bad-key-file': 'not a service account key file: it needs type "service_account", client_email, private_key and an https token_uri',
  'bad-aws-key': 'not an AWS access key: an access key id (AKIA… or ASIA…) and a 40-character secret access key',
  'aws-error': 'AWS refused the request',
  'clock-skew': 'AWS says this computer’s clock is too far from its own',
  'bad-key': 'not a private key Keyhole can sign with (PKCS#8, PKCS#1 RSA or SEC1 P-256, in PEM)',
  'encrypted-key': 'the private key is encrypted: export it without a passphrase',
  'weak-key': 'RSA keys must have at least 2048 bits',
  redirect: 'the token endpoint answered with a redirect, which Keyhole does not follow',
  timeout: 'the token endpoint did not answer in time',
  network: 'the token endpoint could not be reached',
  'too-large': 'the token endpoint answer is larger than Keyhole allows',
  'not-json': 'the token endpoint answer is not a JSON object',
  'http-status': 'the token endpoint answered with an error status',
  'oauth-error': 'the token endpoint refused the request',
  'invalid-grant': 'the token endpoint says the grant is no longer valid',
  'no-access-token': 'the token endpoint answer has no access token',
  'bad-token': 'the token endpoint answer holds a token that cannot be used in a header',
  'bad-token-type': 'the token endpoint answer is not a bearer token',
  'bad-expires-in': 'the token endpoint answer has no usable expires_in',
  'not-refresher': 'another device holds the refresher role for this credential',
  'not-synced': 'this vault is not synced to a distant vault, whose engine would mint this credential',
  'distant-refused': 'the distant vault refused: no policy of that engine gives this device that role',
};

export class CredentialError extends Error {
  override readonly name = 'CredentialError';
  constructor(
    readonly code: CredentialErrorCode,
    readonly detail: {
      readonly status?: number;
      readonly oauthError?: string;
      /** an AWS error code word (AccessDenied, ExpiredToken, …), never its message */
      readonly awsError?: string;
      /** clock-skew: the server's own time (ms), to sign again with */
      readonly serverTime?: number;
    } = {},
  ) {
    super(MESSAGES[code]);
  }
}
