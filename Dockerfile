# Multi-stage build: compile TypeScript and the web console (Vite) with dev dependencies, ship only
# the runtime (dist/ holds the console too).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY scripts ./scripts
COPY server ./server
COPY storage ./storage
COPY auth ./auth
COPY sigstore ./sigstore
COPY mirror ./mirror
COPY console ./console
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    REGISTRY_HTTP_ADDR=:5000 \
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/signet/storage \
    REGISTRY_DATABASE_DATADIRECTORY=/var/lib/signet/database
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /var/lib/signet && chown node:node /var/lib/signet
USER node
VOLUME /var/lib/signet
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:5000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Two malloc arenas, not 8 per core, and a fixed 4 MiB trim threshold (README "Memory and
# garbage collection"); -e overrides.
ENV MALLOC_ARENA_MAX=2
ENV MALLOC_TRIM_THRESHOLD_=4194304
ENTRYPOINT ["node", "--max-semi-space-size=4", "--initial-old-space-size=64", "--no-allocation-site-pretenuring", "--expose-gc", "--v8-pool-size=1", "--max-valid-polymorphic-map-count=16", "dist/server/main.js"]
CMD ["serve"]
