// The team's latest tasks (GET /v1/tasks), newest first: status, progress, provider, cache, price, errors in
// words, cancel while running, and once completed the video to play and download.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiFailure, describeFailure, describeTaskError, type Task } from './api';

/** The history holds at most this many tasks. */
export const HISTORY_LIMIT = 20;

const isRunning = (t: Task) => t.status === 'pending' || t.status === 'processing';
const fromCache = (t: Task) => t.cache === 'hit' || t.cache === 'coalesced';

/** How long a prompt may be in a row of the history (and in its buttons' names) before it is cut. */
const PROMPT_SHOWN_CHARS = 80;
/** The prompt cut to `max` code points, with an ellipsis when cut. */
const truncate = (text: string, max: number) => {
  const chars = [...text.replace(/\s+/g, ' ').trim()];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : chars.join('');
};

/** Who made (or is making) the video: the provider, the cache, or nobody yet. */
function servedBy(t: Task): string {
  if (t.provider) return `by ${t.provider}`;
  if (t.cache === 'hit') return 'from the cache';
  if (t.cache === 'coalesced') return isRunning(t) ? 'following an identical running generation' : 'followed an identical generation';
  return isRunning(t) ? 'waiting for a provider' : 'no provider';
}

interface Props {
  apiKey: string;
  tasks: Task[] | null;
  usdPerCredit: number | null;
  onChanged: () => Promise<void>;
}

export function History({ apiKey, tasks, usdPerCredit, onChanged }: Props) {
  const running = tasks?.filter(isRunning).length ?? 0;
  const completed = tasks?.filter((t) => t.status === 'completed').length ?? 0;
  return (
    <section class="panel history" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <p class="counts" data-testid="history-counts" aria-live="polite">
        {running} running · {completed} completed
      </p>
      {tasks === null ? (
        <p role="status">Loading…</p>
      ) : tasks.length === 0 ? (
        <p class="muted">No videos yet.</p>
      ) : (
        <ol class="tasks">
          {tasks.map((t, i) => (
            <TaskItem key={t.id} position={i + 1} apiKey={apiKey} task={t} usdPerCredit={usdPerCredit} onChanged={onChanged} />
          ))}
        </ol>
      )}
    </section>
  );
}

interface ItemProps {
  /** 1 for the newest task: the number its buttons' names give it. */
  position: number;
  apiKey: string;
  task: Task;
  usdPerCredit: number | null;
  onChanged: () => Promise<void>;
}

function TaskItem({ position, apiKey, task, usdPerCredit, onChanged }: ItemProps) {
  const [videoUrl, setVideoUrl] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => () => void (videoUrl && URL.revokeObjectURL(videoUrl)), [videoUrl]);

  const credits = task.usage.credits_settled ?? task.usage.credits_reserved;
  const price = `${credits.toLocaleString('en')} credits${usdPerCredit === null ? '' : ` ($${(credits * usdPerCredit).toFixed(2)})`}${task.usage.credits_settled === null ? ' reserved' : ''}`;
  const size = task.task_info.size?.replace('x', ' × ');
  const prompt = task.task_info.prompt === undefined ? null : truncate(task.task_info.prompt, PROMPT_SHOWN_CHARS);
  /** What each button names, so that 20 "Play" buttons can be told apart by a screen reader. */
  const which = `video ${position}${prompt ? `: ${prompt}` : ` (${task.id})`}`;

  /** The video as a Blob URL: a `<video>` cannot send the key, so the page fetches it. */
  async function videoBlobUrl(): Promise<string | null> {
    if (videoUrl) return videoUrl;
    setBusy(true);
    setError(null);
    try {
      const url = URL.createObjectURL(await api.video(apiKey, task.id));
      setVideoUrl(url);
      return url;
    } catch (err) {
      setError(describeFailure(err));
      return null;
    } finally {
      setBusy(false);
    }
  }

  async function download() {
    const url = await videoBlobUrl();
    if (!url) return;
    const a = document.createElement('a');
    a.href = url;
    a.download = `${task.id}.mp4`;
    a.click();
  }

  async function cancel() {
    setBusy(true);
    setError(null);
    try {
      await api.cancel(apiKey, task.id);
    } catch (err) {
      // It finished while the cancel was on its way: the refresh below shows how.
      const finished = err instanceof ApiFailure && err.code === 'task_finished';
      setError(finished ? 'Too late to cancel: it had already finished.' : describeFailure(err));
    }
    await onChanged();
    setBusy(false);
  }

  return (
    <li class={`task ${task.status}`} data-testid="task" data-task-id={task.id} data-status={task.status} aria-label={`Task ${task.id}, ${task.status}`}>
      <div class="task-head">
        <span class={`status ${task.status}`}>{task.status}</span>
        {fromCache(task) && (
          <span class="badge" data-testid="cache-badge" title={task.cache === 'hit' ? 'Served from a stored identical video' : 'Followed an identical running task'}>
            cache {task.cache}
          </span>
        )}
        <code class="id">{task.id}</code>
      </div>
      {prompt !== null && (
        <p class="prompt" data-testid="task-prompt" title={task.task_info.prompt}>
          {prompt}
        </p>
      )}
      <p class="meta">
        {task.model} · {size} · {task.task_info.video_duration} s{task.task_info.reference_image && <span data-testid="task-image"> · with image</span>} · {servedBy(task)} · <span data-testid="task-price">{price}</span>
      </p>
      {isRunning(task) && (
        <div class="progress-row">
          <label for={`progress-${task.id}`}>Progress</label>
          <progress id={`progress-${task.id}`} max={100} value={task.progress}>
            {task.progress} %
          </progress>
          <span>{task.progress} %</span>
          <button type="button" onClick={cancel} disabled={busy || !task.task_info.can_cancel} aria-label={`Cancel ${which}`}>
            Cancel
          </button>
        </div>
      )}
      {task.error && (
        <p class="error" data-testid="task-error">
          {describeTaskError(task.error)}
        </p>
      )}
      {task.status === 'completed' && (
        <div class="video-row">
          {videoUrl ? (
            <video src={videoUrl} controls preload="auto" aria-label={`Video ${which}`} />
          ) : (
            <button type="button" onClick={() => void videoBlobUrl()} disabled={busy} aria-label={`Play ${which}`}>
              {busy ? 'Loading…' : 'Play'}
            </button>
          )}
          <button type="button" onClick={() => void download()} disabled={busy} aria-label={`Download ${which}`}>
            Download
          </button>
        </div>
      )}
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </li>
  );
}
