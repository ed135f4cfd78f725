// Client identity (spec §3.6) and the public base URL of links.
import { isIP } from 'node:net';
import { clientIp } from '@quintet/kernel/security';
import type { FastifyRequest } from 'fastify';
import type { RavenContext } from './context.js';

/** An IPv6 address reduced to its `/prefix` network, written `<network>/<prefix>`. */
export function ipv6Network(address: string, prefix: number): string {
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  const bits = groups.map((group) => Number.parseInt(group || '0', 16));
  const out: string[] = [];
  for (let index = 0; index < 8; index++) {
    const keep = Math.max(0, Math.min(16, prefix - index * 16));
    const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
    out.push(((bits[index] ?? 0) & mask).toString(16));
  }
  return `${out.join(':')}/${prefix}`;
}

/** The client for limits and blocks: the peer (or trusted XFF hop); IPv6 grouped by IPV6_PREFIX_LENGTH. */
export function clientIdentity(request: FastifyRequest, context: RavenContext): string {
  const forwarded = request.headers['x-forwarded-for'];
  const address = clientIp(
    request.raw.socket.remoteAddress,
    Array.isArray(forwarded) ? forwarded.join(',') : forwarded,
    context.trustedProxies,
  );
  if (isIP(address) === 6 && context.config.ipv6PrefixLength < 128) {
    return ipv6Network(address, context.config.ipv6PrefixLength);
  }
  return address || 'unknown';
}

function fromTrustedProxy(request: FastifyRequest, context: RavenContext): boolean {
  const peer = (request.raw.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
  const family = isIP(peer);
  return (
    context.trustedProxies !== null &&
    family !== 0 &&
    context.trustedProxies.check(peer, family === 6 ? 'ipv6' : 'ipv4')
  );
}

function firstValue(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  return text?.split(',')[0]?.trim() || undefined;
}

/** `PUBLIC_BASE_URL`, else `<scheme>://<Host>` (X-Forwarded-Proto/-Host only via a trusted proxy). */
export function baseUrl(request: FastifyRequest, context: RavenContext): string {
  if (context.config.publicBaseUrl) return context.config.publicBaseUrl;
  let scheme = 'http';
  let host = request.headers.host ?? `${context.config.host}`;
  if (fromTrustedProxy(request, context)) {
    const proto = firstValue(request.headers['x-forwarded-proto']);
    if (proto === 'http' || proto === 'https') scheme = proto;
    host = firstValue(request.headers['x-forwarded-host']) ?? host;
  }
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) host = 'localhost';
  return `${scheme}://${host}`;
}

/** True when the User-Agent is a link-preview bot (§5 B2). */
export function isLinkPreviewBot(request: FastifyRequest, context: RavenContext): boolean {
  if (!context.config.blockLinkPreviewBots) return false;
  const agent = (request.headers['user-agent'] ?? '').toLowerCase();
  if (agent === '') return false;
  return context.config.linkPreviewBots.some((bot) => agent.includes(bot.toLowerCase()));
}
