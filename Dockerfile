# Paygress: one image for every ingress controller (ingress-nginx, Traefik,
# Istio). Paygress runs its TypeScript sources directly on Node 24's type
# stripping, so there is no build step: the image holds the production
# dependencies and the sources, nothing else.
#
# scripts/stage-image.sh repeats the COPY and install steps below into a
# folder, and test/deploy/image-staging.test.ts runs Paygress from it: keep
# every COPY a plain `COPY <paths in the repository> <dest>` so the script
# can read it.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: the `node` devDependency (a Node 24 binary
# for machines without one), tap, typescript and prettier stay out.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
# A fixed uid, so the pod's runAsUser, fsGroup and volume ownership can name
# it; no home and no shell, since nothing logs in.
RUN groupadd --system --gid 10001 paygress \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin paygress \
 && mkdir -p /var/lib/paygress \
 && chown 10001:10001 /var/lib/paygress
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY proto ./proto

# The wallet store (real money) lives in the data directory: mount a
# persistent volume there. /tmp is the only other place written to, so the
# root filesystem can be read-only.
ENV NODE_ENV=production \
    PAYGRESS_DATA_DIR=/var/lib/paygress \
    PAYGRESS_DEV_MINT=false
VOLUME ["/var/lib/paygress", "/tmp"]

# Code and dependencies stay owned by root: the process cannot change them.
USER 10001:10001
# 9090 is the admin listener's port when admin.port sets it (the manifests do).
EXPOSE 8080 9001 9090
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PAYGRESS_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Semi-spaces of 8 MB: V8 grows them to 64 MB by default, whose scavenges
# took 20 ms and put the gRPC p99 over 5 ms at 10,000 checks a second
# (bench/young-gen.ts, docs/benchmarks.md).
ENTRYPOINT ["node", "--max-semi-space-size=8", "/app/bin/paygress.ts"]
CMD ["serve"]
