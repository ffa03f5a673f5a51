/**
 * OIDC identity tokens as Cloud Tasks attaches them to HTTP tasks with an `oidcToken`.
 *
 * Owns the emulator's signing key (an RSA pair generated at start), the public JWKS served at
 * `/oauth2/v3/certs`, and the tokens: RS256 with a `kid`, claims as Google issues them for a
 * service account (iss, aud, azp, sub, email, email_verified, iat, exp one hour later).
 * Tokens are cached per service account and audience until shortly before they expire.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

/** The issuer of Google's ID tokens, as Google sets it. */
export const GOOGLE_ISSUER = 'https://accounts.google.com';

const LIFETIME_S = 3600;
const REUSE_MARGIN_S = 300;
const CACHE_LIMIT = 1000;

/** A service account's numeric unique id, stable for its email. */
function uniqueIdFor(email: string): string {
  const digest = createHash('sha256').update(email.toLowerCase()).digest();
  const n = digest.readBigUInt64BE(0) % 10n ** 20n;
  return `1${n.toString().padStart(20, '0')}`;
}

export class OidcSigner {
  private readonly cache = new Map<string, { token: string; exp: number }>();

  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicJwk: JWK,
    readonly issuer: string,
  ) {}

  static async create(issuer: string = GOOGLE_ISSUER): Promise<OidcSigner> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
    const kid = randomBytes(20).toString('hex');
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    return new OidcSigner(privateKey, jwk, issuer);
  }

  /** The public keys, as Google serves them at https://www.googleapis.com/oauth2/v3/certs. */
  get jwks(): { keys: JWK[] } {
    return { keys: [{ ...this.publicJwk }] };
  }

  /** An ID token for `serviceAccountEmail` with audience `audience`. */
  async sign(serviceAccountEmail: string, audience: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const key = `${serviceAccountEmail}\n${audience}`;
    const cached = this.cache.get(key);
    if (cached && cached.exp - REUSE_MARGIN_S > now) return cached.token;
    const id = uniqueIdFor(serviceAccountEmail);
    const exp = now + LIFETIME_S;
    const token = await new SignJWT({ email: serviceAccountEmail, email_verified: true, azp: id })
      .setProtectedHeader({ alg: 'RS256', kid: this.publicJwk.kid ?? '', typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(audience)
      .setSubject(id)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(this.privateKey);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(key, { token, exp });
    return token;
  }
}
