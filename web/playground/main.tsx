// The playground's entry: the key gate, then the generator and the team's history side by side.
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, describeFailure, KEY_REJECTED_EVENT, sessionKey, type ApiFailure, type ModelList, type Task } from './api';
import { Generator } from './generator';
import { History, HISTORY_LIMIT } from './history';
import { KeyForm } from './key-form';

interface Session {
  key: string;
  team: { id: string; name: string };
  /** Entered in the key form just now (not restored from the tab's session): focus moves to the generator. */
  entered: boolean;
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(sessionKey.get() !== null);
  const [keyError, setKeyError] = useState<string | null>(null);

  /** Asks vidgate whose key it is: the team, or the refusal in words. */
  const useKey = useCallback(async (key: string, entered = true) => {
    setKeyError(null);
    try {
      const usage = await api.usage(key);
      sessionKey.set(key);
      setSession({ key, team: usage.team, entered });
    } catch (err) {
      sessionKey.clear();
      setKeyError(describeFailure(err));
    } finally {
      setChecking(false);
    }
  }, []);

  useEffect(() => {
    const stored = sessionKey.get();
    if (stored) void useKey(stored, false);
  }, [useKey]);

  const forget = () => {
    sessionKey.clear();
    setSession(null);
  };

  // A key revoked or expired mid-session: every call of the page would fail; forget it and ask for another.
  useEffect(() => {
    const rejected = (e: Event) => {
      const failure = (e as CustomEvent<ApiFailure>).detail;
      sessionKey.clear();
      setSession(null);
      // While the key is being checked, useKey's own refusal follows this one and replaces it.
      setKeyError(`This key no longer works (${failure.message}): enter another one.`);
    };
    window.addEventListener(KEY_REJECTED_EVENT, rejected);
    return () => window.removeEventListener(KEY_REJECTED_EVENT, rejected);
  }, []);

  return (
    <>
      <header class="top">
        <h1>vidgate playground</h1>
        {session && (
          <p class="team">
            Team <strong data-testid="team-name">{session.team.name}</strong> <span class="muted">({session.team.id})</span>{' '}
            <button type="button" class="link" onClick={forget}>
              Use another key
            </button>
          </p>
        )}
      </header>
      {session ? <Workspace key={session.key} apiKey={session.key} focusGenerator={session.entered} /> : checking ? <p role="status">Checking the key…</p> : <KeyForm onKey={useKey} error={keyError} />}
    </>
  );
}

/** The generator and the history, with the catalog and the task list they share. */
function Workspace({ apiKey, focusGenerator }: { apiKey: string; focusGenerator: boolean }) {
  const [catalog, setCatalog] = useState<ModelList | null>(null);
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const refresh = useCallback(async () => {
    try {
      setTasks((await api.tasks(apiKey, HISTORY_LIMIT)).data);
      setError(null);
    } catch (err) {
      setError(describeFailure(err));
    }
  }, [apiKey]);

  useEffect(() => {
    api.models(apiKey).then(setCatalog, (err: unknown) => setError(describeFailure(err)));
    void refresh();
  }, [apiKey, refresh]);

  // Poll while a task runs; stop when none does.
  const running = tasks?.some((t) => t.status === 'pending' || t.status === 'processing') ?? false;
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => void refresh(), 1000);
    return () => clearInterval(timer);
  }, [running, refresh]);

  return (
    <main class="workspace">
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {catalog ? <Generator apiKey={apiKey} catalog={catalog} onCreated={refresh} focusOnMount={focusGenerator} historyVersion={tasks?.map((t) => t.status).join() ?? ''} /> : <p role="status">Loading the models…</p>}
      <History apiKey={apiKey} tasks={tasks} usdPerCredit={catalog?.usd_per_credit ?? null} onChanged={refresh} />
    </main>
  );
}

render(<App />, document.getElementById('app')!);
