# syntax=docker/dockerfile:1
#
# One image for every vmdb process: `vmdb server` (the API), `vmdb worker` (the worker, which also
# runs the Director and sweep Schedules) and `vmdb migrate`. docker-compose.yml builds it; by hand:
#   docker build -t vmdb:0.1.0 .
# No configuration and no secret is built in: everything comes from the environment at run time.

# ---- build: the toolchain for better-sqlite3's native addon, the TypeScript compiler, vite ----
FROM node:20.20.2-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# npm 11 honours package.json "allowScripts" (only better-sqlite3 runs an install script), as in development.
RUN npm install -g npm@11.19.1
# node-gyp takes the headers of this very Node from the image instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
COPY entities ./entities
COPY workflows ./workflows
COPY activities ./activities
# The dashboard's sources: vite builds them into dist/web, which the API serves at /.
COPY web ./web
RUN npm run build \
 && npm prune --omit=dev

# ---- runtime: Node, the compiled code and the production dependencies, nothing else ----
FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# State of the worker's local VMs (the `local` driver) and the agents' stop file; a volume in docker-compose.yml.
RUN mkdir -p /var/lib/vmdb && chown node:node /var/lib/vmdb
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The base image's unprivileged user (uid 1000); the files above stay root's, read-only to it.
USER node
# The API's port (VMDB_API_PORT). The worker's health and metrics ports are set in docker-compose.yml.
EXPOSE 8080
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["--help"]
