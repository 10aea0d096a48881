// The request: model, prompt, orientation, quality, duration and reference image, with its estimated cost.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, describeFailure, type Estimate, type GenerationRequest, type Model, type ModelList, type VideoSize } from './api';
import { readReferenceImage, sameShape, type ReferenceImage } from './image';

/** GenerationRequest.prompt's maxLength in openapi/vidgate.yaml. */
export const PROMPT_MAX_CHARS = 32000;
const DURATIONS = [4, 8, 12] as const;
type Orientation = 'landscape' | 'portrait';
type Quality = '720p' | '1080p';
const SIZE_OF: Record<Orientation, Record<Quality, VideoSize>> = {
  landscape: { '720p': '1280x720', '1080p': '1792x1024' },
  portrait: { '720p': '720x1280', '1080p': '1024x1792' },
};
/** How long choices rest before the estimate is asked for again. */
const ESTIMATE_DEBOUNCE_MS = 300;

const offers = (model: Model, orientation: Orientation, quality: Quality) => model.sizes.includes(SIZE_OF[orientation][quality]);

interface Props {
  apiKey: string;
  catalog: ModelList;
  onCreated: () => Promise<void>;
  /** Changes when a task of the history changes status: the cache and the quota may answer otherwise now. */
  historyVersion: string;
  /** Take the focus when shown (the key was just entered). */
  focusOnMount: boolean;
}

export function Generator({ apiKey, catalog, onCreated, historyVersion, focusOnMount }: Props) {
  const [modelId, setModelId] = useState(catalog.data[0]?.id ?? '');
  const [prompt, setPrompt] = useState('');
  const [orientation, setOrientation] = useState<Orientation>('landscape');
  const [quality, setQuality] = useState<Quality>('720p');
  const [duration, setDuration] = useState<number>(4);
  const [image, setImage] = useState<ReferenceImage | null>(null);
  const [imageError, setImageError] = useState<string | null>(null);
  const [resizeMode, setResizeMode] = useState<'pad' | 'crop'>('pad');
  /** The latest estimate, and the choices it was made for (`requestKey`). */
  const [estimated, setEstimated] = useState<{ for: string; estimate: Estimate } | null>(null);
  /** An estimate refused, and the choices it was for: shown for those only, so it never outlives them. */
  const [estimateError, setEstimateError] = useState<{ for: string; text: string } | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const modelSelect = useRef<HTMLSelectElement>(null);
  useEffect(() => void (focusOnMount && modelSelect.current?.focus()), []);

  const model = catalog.data.find((m) => m.id === modelId);
  const hasHigh = model?.qualities?.includes('1080p') ?? false;

  // Keep the choices to what the model offers.
  useEffect(() => {
    if (!model) return;
    const q: Quality = hasHigh ? quality : '720p';
    const o = offers(model, orientation, q) ? orientation : (['landscape', 'portrait'] as const).find((x) => offers(model, x, q)) ?? orientation;
    if (q !== quality) setQuality(q);
    if (o !== orientation) setOrientation(o);
    if (!model.durations.includes(duration)) setDuration(model.durations[0] ?? 4);
    if (!model.image_input && image) dropImage();
  }, [modelId]);

  const size = SIZE_OF[orientation][quality];
  const blankPrompt = prompt.trim() === '';
  /** Counted as the API counts (the spec's maxLength): code points, so an emoji is one character, not two UTF-16 units. */
  const promptChars = [...prompt].length;
  const tooLong = promptChars > PROMPT_MAX_CHARS;

  const request = (): GenerationRequest => ({
    model: modelId,
    prompt: blankPrompt ? 'estimate' : prompt,
    aspect_ratio: size,
    duration: duration as 4 | 8 | 12,
    cache: true,
    ...(image && { resize_mode: resizeMode }),
  });

  // The estimate follows every choice; until the one for the current choices arrives, the last one reads as updating.
  const requestKey = JSON.stringify([request(), image?.sha256 ?? null]);
  useEffect(() => {
    if (!model) return;
    if (tooLong) return void setEstimated(null); // no price for a request the API would refuse
    let stale = false;
    const timer = setTimeout(() => {
      api.estimate(apiKey, request(), image?.sha256 ?? undefined).then(
        (e) => !stale && (setEstimated({ for: requestKey, estimate: e }), setEstimateError(null)),
        (err: unknown) => !stale && (setEstimated(null), setEstimateError({ for: requestKey, text: describeFailure(err) })),
      );
    }, ESTIMATE_DEBOUNCE_MS);
    return () => {
      stale = true;
      clearTimeout(timer);
    };
  }, [apiKey, modelId, prompt, size, duration, image, resizeMode, historyVersion]);

  function dropImage() {
    if (image) URL.revokeObjectURL(image.previewUrl);
    setImage(null);
    if (fileInput.current) fileInput.current.value = '';
  }

  async function takeFile(file: File | undefined) {
    if (!file) return;
    setImageError(null);
    try {
      const next = await readReferenceImage(file);
      dropImage();
      setImage(next);
    } catch (err) {
      dropImage();
      setImageError(err instanceof Error ? err.message : String(err));
    }
  }

  async function generate(e: Event) {
    e.preventDefault();
    if (blankPrompt || tooLong || !model) return;
    setSubmitting(true);
    setResult(null);
    const form = new FormData();
    form.set('prompt', prompt);
    form.set('model', modelId);
    form.set('seconds', String(duration));
    form.set('size', size);
    if (image) {
      form.set('resize_mode', resizeMode);
      form.set('input_reference', image.file, image.file.name);
    }
    try {
      const created = await api.create(apiKey, form);
      setResult({ ok: true, text: `Submitted ${created.id}.` });
      await onCreated();
    } catch (err) {
      setResult({ ok: false, text: describeFailure(err, updating ? null : charge) });
      await onCreated();
    } finally {
      setSubmitting(false);
    }
  }

  // The cache can only be known for the prompt typed, and for an image whose bytes were hashed.
  const cacheKnown = !blankPrompt && (!image || image.sha256 !== null);
  // A prompt too long has no price from its first render on (the effect that forgets the last estimate runs after it).
  const shown = tooLong ? null : estimated;
  const estimate = shown?.estimate ?? null;
  const updating = shown !== null && shown.for !== requestKey;
  const cached = cacheKnown ? estimate?.cache : undefined;
  const charge = cached ?? (estimate && estimate.credits !== null ? { credits: estimate.credits, usd: estimate.usd ?? 0 } : null);

  return (
    <form class="panel generator" onSubmit={generate} aria-labelledby="generator-title">
      <h2 id="generator-title">New video</h2>

      <label for="model">Model</label>
      <select id="model" ref={modelSelect} value={modelId} onChange={(e) => setModelId(e.currentTarget.value)}>
        {catalog.data.map((m) => (
          <option value={m.id}>{m.id}</option>
        ))}
      </select>

      <label for="prompt">Prompt</label>
      <textarea id="prompt" rows={5} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} aria-describedby="prompt-count" aria-invalid={tooLong ? 'true' : undefined} required />
      <p id="prompt-count" class={tooLong ? 'error counter' : 'muted counter'} aria-live="polite">
        {promptChars.toLocaleString('en')} / {PROMPT_MAX_CHARS.toLocaleString('en')} characters{tooLong && ': too long'}
      </p>

      <fieldset>
        <legend>Orientation</legend>
        {(['landscape', 'portrait'] as const).map((o) => (
          <label class="choice">
            <input type="radio" name="orientation" value={o} checked={orientation === o} disabled={!model || !offers(model, o, quality)} onChange={() => setOrientation(o)} />
            {o === 'landscape' ? 'Landscape (16:9)' : 'Portrait (9:16)'}
          </label>
        ))}
      </fieldset>

      {hasHigh && (
        <>
          <label for="quality">Quality</label>
          <select id="quality" value={quality} onChange={(e) => setQuality(e.currentTarget.value as Quality)}>
            <option value="720p">720p</option>
            <option value="1080p" disabled={!model || !offers(model, orientation, '1080p')}>
              1080p
            </option>
          </select>
        </>
      )}
      <p class="muted" data-testid="size">
        Size {size.replace('x', ' × ')}
      </p>

      <fieldset>
        <legend>Duration</legend>
        {DURATIONS.map((d) => (
          <label class="choice">
            <input type="radio" name="duration" value={d} checked={duration === d} disabled={!model?.durations.includes(d)} onChange={() => setDuration(d)} />
            {d} s
          </label>
        ))}
      </fieldset>

      <fieldset disabled={!model?.image_input}>
        <legend>Reference image {model && !model.image_input && <span class="muted">(not offered by {model.id})</span>}</legend>
        {/* Hidden from sight, not from keyboards or screen readers: the drop zone is its label and opens it. */}
        <input id="image" ref={fileInput} class="file visually-hidden" type="file" accept="image/jpeg,image/png,image/webp" onChange={(e) => void takeFile(e.currentTarget.files?.[0])} aria-describedby={imageError ? 'image-error' : undefined} />
        <label
          for="image"
          class={dragging ? 'drop dragging' : 'drop'}
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            void takeFile(e.dataTransfer?.files[0]);
          }}
        >
          Choose or drop a JPG, PNG or WebP image (up to 10 MB)
        </label>
        {imageError && (
          <p id="image-error" role="alert" class="error">
            {imageError}
          </p>
        )}
        {image && (
          <div class="image-info">
            <img src={image.previewUrl} alt="The reference image" />
            <div>
              <p data-testid="image-size">
                {image.file.name}: {image.width} × {image.height} px; the video is {size.replace('x', ' × ')} px
                {sameShape(image, size) ? ' (same shape).' : ', another shape:'}
              </p>
              <div role="radiogroup" aria-label="Fit the image" class="fit">
                <label class="choice">
                  <input type="radio" name="resize" value="pad" checked={resizeMode === 'pad'} onChange={() => setResizeMode('pad')} />
                  Pad (keep all of it, add bars)
                </label>
                <label class="choice">
                  <input type="radio" name="resize" value="crop" checked={resizeMode === 'crop'} onChange={() => setResizeMode('crop')} />
                  Crop (fill the frame, cut the edges)
                </label>
              </div>
              <button type="button" class="link" onClick={dropImage}>
                Remove the image
              </button>
            </div>
          </div>
        )}
      </fieldset>

      <section class={updating ? 'estimate updating' : 'estimate'} aria-labelledby="estimate-title" aria-live="polite" aria-busy={updating ? 'true' : undefined} data-testid="estimate">
        <h3 id="estimate-title">Estimated cost{updating && <span class="muted"> (updating…)</span>}</h3>
        {tooLong && (
          <p class="error" data-testid="estimate-too-long">
            No price: the prompt is too long ({promptChars.toLocaleString('en')} characters; at most {PROMPT_MAX_CHARS.toLocaleString('en')}).
          </p>
        )}
        {estimateError?.for === requestKey && (
          <p class="error" data-testid="estimate-error">
            {estimateError.text}
          </p>
        )}
        {estimate && charge && (
          <>
            <p class="price" data-testid="estimate-price">
              <strong data-testid="estimate-credits">{charge.credits.toLocaleString('en')} credits</strong> · <span data-testid="estimate-usd">${charge.usd.toFixed(2)}</span>
            </p>
            <p data-testid="estimate-provider">
              {cached
                ? cached.status === 'hit'
                  ? 'Served from the cache: an identical video is stored.'
                  : 'Would follow the identical request that is running (cache).'
                : estimate.provider
                  ? `Served by ${estimate.provider}.`
                  : 'No provider is available now.'}
            </p>
            {estimate.quota && !estimate.quota.covered && (
              <p class="error" data-testid="estimate-quota">
                Not covered: {estimate.quota.remaining_credits.toLocaleString('en')} credits left in {estimate.quota.quota.replace('.', "'s ").replaceAll('_', ' ')}.
              </p>
            )}
          </>
        )}
        {estimate && !charge && <p>No provider can serve this request.</p>}
      </section>

      <button type="submit" class="primary" disabled={submitting || blankPrompt || tooLong || !model}>
        {submitting ? 'Submitting…' : 'Generate'}
      </button>
      {result && (
        <p role={result.ok ? 'status' : 'alert'} class={result.ok ? 'ok' : 'error'} data-testid="generate-result">
          {result.text}
        </p>
      )}
    </form>
  );
}
