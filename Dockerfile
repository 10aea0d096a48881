# A minimal image of vidgate for docker-compose.yml. Untested here (Docker cannot run on the project's machines).
# node:20-bookworm has python3, make and g++, which npm ci needs to build better-sqlite3.
FROM node:20-bookworm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# What `npm start` runs before starting: the playground page into dist/playground/, the server into dist/server/.
RUN node --import tsx scripts/build.ts
# Listen on every interface of the container (the default, 127.0.0.1, is unreachable from outside it).
ENV VIDGATE_SERVER__HOST=0.0.0.0 \
    VIDGATE_SERVER__PORT=8080 \
    VIDGATE_DATA_DIR=/data
# Run as the image's unprivileged user, owning only its data directory.
RUN mkdir -p /data /shared && chown node:node /data /shared
USER node
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD node -e "fetch('http://127.0.0.1:8080/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"

# node as PID 1 handles SIGTERM and SIGINT itself and drains (README, "Starting and stopping").
CMD ["node", "--heap-growing-percent=50", "--max-semi-space-size=8", "dist/server/main.mjs"]
