// The API key, asked for once per browser session.
import { useEffect, useRef, useState } from 'preact/hooks';

export function KeyForm({ onKey, error }: { onKey: (key: string) => Promise<void>; error: string | null }) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  // Focus lands on the key field whenever the form appears (first visit, "Use another key", a key rejected mid-session).
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!key.trim()) return;
    setBusy(true);
    await onKey(key.trim());
    setBusy(false);
  };
  return (
    <form class="panel key-form" onSubmit={submit} aria-describedby="key-help">
      <h2>Your API key</h2>
      <label for="api-key">API key</label>
      <input ref={input} id="api-key" name="api-key" type="password" autoComplete="off" spellcheck={false} required value={key} onInput={(e) => setKey(e.currentTarget.value)} aria-invalid={error ? 'true' : undefined} aria-describedby={error ? 'key-error' : undefined} />
      <p id="key-help" class="muted">
        Kept in this browser tab only (session storage) and sent to this vidgate in the Authorization header; never in a URL.
      </p>
      <button type="submit" disabled={busy}>
        {busy ? 'Checking…' : 'Use this key'}
      </button>
      {error && (
        <p id="key-error" role="alert" class="error">
          {error}
        </p>
      )}
    </form>
  );
}
