// Teams and API keys (keys by hash only).
import type { ApiKeyRecord, Store, TeamRecord } from '../types';
import type { Backend } from './sql';

type KeyRow = Omit<ApiKeyRecord, 'allowed_models'> & { allowed_models: string | null };
/** A key's row with its team's columns, each prefixed with `t_`. */
type CallerRow = KeyRow & { [K in Exclude<keyof TeamRecord, 'id'> as `t_${K}`]: TeamRecord[K] };

/** Field by field: every request reads its key (see toTask in ./rows.ts). */
const toKey = (row: KeyRow): ApiKeyRecord => ({
  id: row.id,
  team_id: row.team_id,
  name: row.name,
  key_hash: row.key_hash,
  prefix: row.prefix,
  created_at_ms: row.created_at_ms,
  expires_at_ms: row.expires_at_ms,
  revoked_at_ms: row.revoked_at_ms,
  allowed_models: row.allowed_models === null ? null : (JSON.parse(row.allowed_models) as string[]),
  credits_per_day: row.credits_per_day,
  credits_per_month: row.credits_per_month,
  max_concurrent: row.max_concurrent,
  reads_per_minute: row.reads_per_minute,
  submits_per_minute: row.submits_per_minute,
});
const fromKey = (key: Partial<ApiKeyRecord>) =>
  key.allowed_models === undefined ? key : { ...key, allowed_models: key.allowed_models && JSON.stringify(key.allowed_models) };

const QUOTA_COLUMNS = ['credits_per_day', 'credits_per_month', 'max_concurrent', 'reads_per_minute', 'submits_per_minute'];
const UPDATABLE: Record<'teams' | 'api_keys', ReadonlySet<string>> = {
  teams: new Set(['name', ...QUOTA_COLUMNS]),
  api_keys: new Set(['name', 'expires_at_ms', 'revoked_at_ms', 'allowed_models', ...QUOTA_COLUMNS]),
};

/** `UPDATE table SET a = @a, b = @b WHERE id = @id` for the fields present in `patch`, from a fixed list of columns. */
function updateSql(table: 'teams' | 'api_keys', patch: object): string {
  const sets = Object.keys(patch).map((k) => {
    if (!UPDATABLE[table].has(k)) throw new Error(`${table}.${k} cannot be updated`);
    return `${k} = @${k}`;
  });
  return `UPDATE ${table} SET ${sets.join(', ')} WHERE id = @id`;
}

type TeamMethods = Pick<
  Store,
  'createTeam' | 'getTeam' | 'findTeamByName' | 'listTeams' | 'updateTeam' | 'insertApiKey' | 'findApiKeyByHash' | 'findCaller' | 'getApiKey' | 'listApiKeys' | 'updateApiKey' | 'countApiKeys'
>;

/**
 * The teams' and keys' methods of the Store, over a backend. A taken team name or key hash throws UniqueViolation
 * (`teams.name`, `api_keys.key_hash`) from the unique index itself, so two concurrent creations cannot both pass.
 */
export function createTeamMethods({ read }: Backend): TeamMethods {
  const getKey = async (id: string) => {
    const row = await read.get<KeyRow>('SELECT * FROM api_keys WHERE id = @id', { id });
    return row && toKey(row);
  };
  return {
    async createTeam(team) {
      await read.run(
        `INSERT INTO teams (id, name, created_at_ms, credits_per_day, credits_per_month, max_concurrent, reads_per_minute, submits_per_minute)
         VALUES (@id, @name, @created_at_ms, @credits_per_day, @credits_per_month, @max_concurrent, @reads_per_minute, @submits_per_minute)`,
        { ...team },
      );
      return team;
    },
    async getTeam(id) {
      return read.get<TeamRecord>('SELECT * FROM teams WHERE id = @id', { id });
    },
    async findTeamByName(name) {
      return read.get<TeamRecord>('SELECT * FROM teams WHERE name = @name', { name });
    },
    async listTeams() {
      return read.all<TeamRecord>('SELECT * FROM teams ORDER BY created_at_ms, id');
    },
    async updateTeam(id, patch) {
      if (Object.keys(patch).length) await read.run(updateSql('teams', patch), { ...patch, id });
      return read.get<TeamRecord>('SELECT * FROM teams WHERE id = @id', { id });
    },
    async insertApiKey(key) {
      await read.run(
        `INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at_ms, expires_at_ms, revoked_at_ms, allowed_models,
           credits_per_day, credits_per_month, max_concurrent, reads_per_minute, submits_per_minute)
         VALUES (@id, @team_id, @name, @key_hash, @prefix, @created_at_ms, @expires_at_ms, @revoked_at_ms, @allowed_models,
           @credits_per_day, @credits_per_month, @max_concurrent, @reads_per_minute, @submits_per_minute)`,
        fromKey(key),
      );
    },
    async findApiKeyByHash(hash) {
      const row = await read.get<KeyRow>('SELECT * FROM api_keys WHERE key_hash = @hash', { hash });
      return row && toKey(row);
    },
    async findCaller(hash) {
      // The key and its team in one row; the team's columns renamed (the key has a team_id already).
      const row = await read.get<CallerRow>(
        `SELECT k.*, t.name AS t_name, t.created_at_ms AS t_created_at_ms, t.credits_per_day AS t_credits_per_day,
           t.credits_per_month AS t_credits_per_month, t.max_concurrent AS t_max_concurrent,
           t.reads_per_minute AS t_reads_per_minute, t.submits_per_minute AS t_submits_per_minute
         FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE k.key_hash = @hash`,
        { hash },
      );
      if (!row) return undefined;
      const team: TeamRecord = {
        id: row.team_id,
        name: row.t_name,
        created_at_ms: row.t_created_at_ms,
        credits_per_day: row.t_credits_per_day,
        credits_per_month: row.t_credits_per_month,
        max_concurrent: row.t_max_concurrent,
        reads_per_minute: row.t_reads_per_minute,
        submits_per_minute: row.t_submits_per_minute,
      };
      return { key: toKey(row), team };
    },
    getApiKey: getKey,
    async listApiKeys(teamId) {
      return (await read.all<KeyRow>('SELECT * FROM api_keys WHERE team_id = @team ORDER BY created_at_ms, id', { team: teamId })).map(toKey);
    },
    async updateApiKey(id, patch) {
      if (Object.keys(patch).length) await read.run(updateSql('api_keys', patch), { ...fromKey(patch), id });
      return getKey(id);
    },
    async countApiKeys() {
      return (await read.get<{ n: number }>('SELECT count(*) AS n FROM api_keys'))?.n ?? 0;
    },
  };
}
