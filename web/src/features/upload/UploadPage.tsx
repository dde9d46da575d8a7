import {
  Alert,
  Button,
  Group,
  Paper,
  Progress,
  SimpleGrid,
  Stack,
  TagsInput,
  Text,
  Textarea,
  TextInput,
  Title,
} from "@mantine/core";
import { Dropzone } from "@mantine/dropzone";
import "@mantine/dropzone/styles.css";
import { IconCircleCheck, IconFile, IconFileUpload, IconX } from "@tabler/icons-react";
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router";

import { useGetConfigQuery, useListExportsQuery } from "../../api/api";
import { describeError } from "../../api/errors";
import { useModelUpload } from "../../api/upload";
import { useAppDispatch, useAppSelector } from "../../app/hooks";
import { EXPIRED_PROBLEM, selectAuth, sessionEnded } from "../../auth/authSlice";
import { isExpired } from "../../auth/jwt";
import { useSessionDraft } from "../../components/draft";
import { ErrorAlert } from "../../components/ErrorAlert";
import { formatBytes, formatExactBytes, formatRate } from "../../components/format";
import { PageHeader } from "../../components/PageHeader";
import { StatusBadge } from "../../components/StatusBadge";
import { EvaluationSetFields } from "./EvaluationSetFields";
import { evaluationSetProblem, fileProblem } from "./fileChecks";
import { checkDraft, EMPTY_DRAFT, hasProblems, isBlankDraft, noProblems, placeMessages, type UploadDraft } from "./formModel";
import { RowsEditor } from "./RowsEditor";

type Touched = Partial<Record<"name" | "description" | "labels" | "metrics" | "exportIds" | "labelColumn", boolean>>;

const evaluationNote = (hasEvaluationSet: boolean | undefined) =>
  hasEvaluationSet ? ", and the claimed metrics on the evaluation set" : "";

/** The server's refusals of the evaluation set, shown on its field too. */
const EVALUATION_SET_REASONS = new Set(["EVALUATION_SET_TOO_LARGE", "EVALUATION_SET_NOT_PARQUET"]);

function FileSummary({ file, onRemove, disabled }: { file: File; onRemove: () => void; disabled: boolean }) {
  return (
    <Group gap="sm" wrap="nowrap" style={{ minWidth: 0 }}>
      <IconFile size={28} aria-hidden style={{ flexShrink: 0 }} />
      <Stack gap={0} style={{ minWidth: 0, flex: 1 }}>
        <Text fw={600} truncate="end" title={file.name}>
          {file.name}
        </Text>
        <Text size="xs" c="dimmed" title={formatExactBytes(file.size)}>
          {formatBytes(file.size)}
        </Text>
      </Stack>
      <Button variant="subtle" color="gray" size="xs" leftSection={<IconX size={14} aria-hidden />} onClick={onRemove} disabled={disabled}>
        Remove
      </Button>
    </Group>
  );
}

export default function UploadPage() {
  const dispatch = useAppDispatch();
  const auth = useAppSelector(selectAuth);
  const config = useGetConfigQuery();
  const maxBytes = config.data?.maxModelBytes ?? 1024 ** 3;
  const [params] = useSearchParams();
  const draft = useSessionDraft<UploadDraft>("upload", EMPTY_DRAFT);
  const form = draft.value;
  const [file, setFile] = useState<File | null>(null);
  const [fileMessage, setFileMessage] = useState<string | null>(null);
  const [evaluationSet, setEvaluationSet] = useState<File | null>(null);
  const [touched, setTouched] = useState<Touched>({});
  const [attempted, setAttempted] = useState(false);
  // The form as last sent, while the server's answer about it still applies.
  const [sent, setSent] = useState<UploadDraft | null>(null);
  const upload = useModelUpload();
  const exports = useListExportsQuery({ pageSize: 100 });
  const openFilePicker = useRef<() => void>(null);
  const resultRef = useRef<HTMLDivElement>(null);
  // Bumped when an upload ends: the effect moves the focus to the result once it is drawn (a
  // requestAnimationFrame could run before React had drawn it, leaving the focus on <body>).
  const [resultShown, setResultShown] = useState(0);
  useEffect(() => {
    if (resultShown) resultRef.current?.focus();
  }, [resultShown]);
  const sending = upload.state.phase === "sending";

  // `?name=` (from "Upload a new version") fills an empty name.
  const presetName = params.get("name");
  useEffect(() => {
    if (presetName && !draft.value.name) draft.setValue((d) => ({ ...d, name: presetName }));
  }, [presetName]); // eslint-disable-line react-hooks/exhaustive-deps -- once per preset

  const checked = useMemo(() => checkDraft(form), [form]);
  const shown = (key: keyof Touched) => attempted || Boolean(touched[key]);
  const problems = checked.problems;
  const edit = (patch: Partial<UploadDraft>, field: keyof Touched) => {
    setTouched((t) => ({ ...t, [field]: true }));
    setSent(null);
    draft.setValue((d) => ({ ...d, ...patch }));
  };

  const pick = (files: File[]) => {
    const chosen = files[0];
    if (!chosen) return;
    const problem = fileProblem(chosen, maxBytes);
    setFileMessage(problem);
    setFile(problem ? null : chosen);
    if (upload.state.phase !== "sending") upload.reset();
  };

  const pickEvaluationSet = (chosen: File | null) => {
    setEvaluationSet(chosen);
    if (upload.state.phase !== "sending") upload.reset();
  };
  const evaluationMessage = evaluationSet ? evaluationSetProblem(evaluationSet) : null;

  const focusFirstProblem = () => {
    requestAnimationFrame(() => {
      const invalid = document.querySelector<HTMLElement>('form[aria-label="Upload a model"] [aria-invalid="true"]');
      invalid?.focus();
    });
  };

  const submit = async () => {
    if (sending) return;
    setAttempted(true);
    if (!file) {
      setFileMessage(fileMessage ?? "Choose the .onnx file to upload.");
    }
    if (hasProblems(problems) || !file || evaluationMessage) {
      focusFirstProblem();
      return;
    }
    if (auth.claims && isExpired(auth.claims, Date.now(), 5)) {
      dispatch(sessionEnded(EXPIRED_PROBLEM));
      return;
    }
    setSent(form);
    const version = await upload.start(checked.fields, file, evaluationSet);
    if (version) {
      draft.clear();
      setFile(null);
      setEvaluationSet(null);
      setTouched({});
      setAttempted(false);
    }
    setResultShown((n) => n + 1);
  };

  // The server's field violations, on the fields as they were sent, until the user edits.
  const serverProblems = useMemo(() => {
    if (upload.state.phase !== "failed" || !sent) return null;
    const error = upload.state.error;
    const messages = error.fieldViolations.map((v) => ({
      field: v.field,
      forKey: false,
      ruleId: v.reason ?? "",
      message: v.description,
    }));
    const infoField = error.metadata.field;
    if (messages.length === 0 && infoField && error.httpStatus === 400) {
      messages.push({ field: infoField, forKey: false, ruleId: error.reason ?? "", message: error.message });
    }
    return messages.length ? placeMessages(sent, messages, noProblems(sent)) : null;
  }, [upload.state, sent]);
  const server = serverProblems ?? noProblems(form);

  const fieldError = (key: "name" | "description" | "labels" | "metrics" | "exportIds" | "labelColumn") =>
    server[key] ?? (shown(key) ? problems[key] : undefined);
  const rowErrors = (key: "labelRows" | "metricRows", touchedKey: "labels" | "metrics") =>
    problems[key].map((p, i) => ({
      key: server[key][i]?.key ?? (shown(touchedKey) ? p.key : undefined),
      value: server[key][i]?.value ?? (shown(touchedKey) ? p.value : undefined),
    }));

  const exportSuggestions = (exports.data?.exports ?? []).map((e) => e.exportId ?? "").filter(Boolean);
  const state = upload.state;
  // The server names the part (ErrorInfo metadata `field`: evaluationSet); known reasons in
  // the app's words, others (e.g. EVALUATION_SET_AFTER_FILE) in the server's.
  const serverEvaluationProblem =
    state.phase === "failed" && EVALUATION_SET_REASONS.has(state.error.reason ?? "")
      ? describeError(state.error, "upload").title
      : (serverProblems?.evaluationSet ?? null);

  return (
    <>
      <PageHeader title="Upload a model" docTitle="Upload a model">
        <Text c="dimmed" size="sm">
          An ONNX file and what it is. The registry checks the file, stores it as the next version of the name, and
          marks it <b>Pending Approval</b>.
        </Text>
      </PageHeader>

      {state.phase === "done" && (
        <Alert
          ref={resultRef}
          tabIndex={-1}
          color="teal"
          variant="light"
          icon={<IconCircleCheck aria-hidden />}
          title={`Uploaded ${state.version.name ?? ""} v${state.version.version ?? ""}`}
          mb="lg"
          role="status"
        >
          <Stack gap="sm">
            <Group gap="xs">
              <Text size="sm">It is now</Text>
              <StatusBadge status={state.version.status} size="sm" />
              <Text size="sm">and appears in the models list.</Text>
            </Group>
            <Text size="sm">
              Its validation runs now (ONNX Runtime{evaluationNote(state.version.hasEvaluationSet)}); an approver can
              approve it once that has passed.
            </Text>
            <Group gap="xs">
              <Button component={Link} to={`/models/${state.version.modelId ?? ""}/versions/${state.version.version ?? ""}`} size="xs">
                Open the version to submit it
              </Button>
              <Button component={Link} to="/models" size="xs" variant="light">
                See the models
              </Button>
              <Button size="xs" variant="subtle" onClick={upload.reset}>
                Upload another
              </Button>
            </Group>
          </Stack>
        </Alert>
      )}

      {draft.restored && !isBlankDraft(form) && !file && state.phase === "idle" && (
        <Alert color="blue" variant="light" mb="lg" title="Your draft was kept">
          The fields below are as you left them. Browsers do not keep a chosen file: pick the .onnx file again (and the evaluation set, if any).
        </Alert>
      )}

      <form
        aria-label="Upload a model"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        <SimpleGrid cols={{ base: 1, lg: 2 }} spacing="lg">
          <Stack gap="lg">
            <Paper withBorder radius="md" p="md">
              <Stack gap="md">
                <Title order={2} size="h4">
                  Model
                </Title>
                <TextInput
                  label="Name"
                  description="Lower-case letters, digits, '.', '_' and '-'. An existing name gets its next version."
                  placeholder="pump-bearing-risk"
                  required
                  value={form.name}
                  onChange={(e) => {
                    edit({ name: e.currentTarget.value }, "name");
                  }}
                  onBlur={() => {
                    setTouched((t) => ({ ...t, name: true }));
                  }}
                  error={fieldError("name")}
                  disabled={sending}
                  spellCheck={false}
                  autoComplete="off"
                />
                <Textarea
                  label="Description"
                  description="What it predicts, how it was trained (at most 4,096 characters)."
                  autosize
                  minRows={3}
                  maxRows={10}
                  value={form.description}
                  onChange={(e) => {
                    edit({ description: e.currentTarget.value }, "description");
                  }}
                  error={fieldError("description")}
                  disabled={sending}
                />
                <TagsInput
                  label="Training exports (lineage)"
                  description="The export ids of the data it was trained on; paste ids, press Enter after each."
                  placeholder={form.exportIds.length ? "" : "e.g. 0b7c4f6e-…"}
                  data={exportSuggestions}
                  value={form.exportIds}
                  onChange={(value) => {
                    edit({ exportIds: value }, "exportIds");
                  }}
                  splitChars={[",", " ", "\n"]}
                  error={fieldError("exportIds")}
                  disabled={sending}
                  clearable
                  styles={{ pill: { maxWidth: "100%" } }}
                />
              </Stack>
            </Paper>
            <EvaluationSetFields
              file={evaluationSet}
              onPick={pickEvaluationSet}
              problem={evaluationMessage ?? serverEvaluationProblem}
              labelColumn={form.labelColumn ?? ""}
              onLabelColumn={(value) => {
                edit({ labelColumn: value }, "labelColumn");
              }}
              labelColumnProblem={fieldError("labelColumn")}
              disabled={sending}
            />
          </Stack>

          <Stack gap="lg">
            <Paper withBorder radius="md" p="md">
              <Stack gap="md">
                <Title order={2} size="h4">
                  ONNX file
                </Title>
                <Dropzone
                  onDrop={pick}
                  onReject={(rejections) => {
                    pick(rejections.map((r) => r.file));
                  }}
                  multiple={false}
                  openRef={openFilePicker}
                  activateOnClick={false}
                  activateOnKeyboard={false}
                  // Without it the inner "Choose a file…" button never gets a mouse click.
                  enablePointerEvents
                  inputProps={{ "aria-label": "ONNX file" }}
                  disabled={sending}
                  accept={{ "application/octet-stream": [".onnx"] }}
                  radius="md"
                  p="lg"
                >
                  <Stack align="center" gap={6} ta="center" style={{ pointerEvents: "none" }}>
                    <IconFileUpload size={36} aria-hidden stroke={1.5} />
                    <Text fw={600}>Drop an .onnx file here</Text>
                    <Text size="xs" c="dimmed">
                      At most {formatBytes(maxBytes)}. The file is sent as it is, straight from your disk.
                    </Text>
                  </Stack>
                  <Group justify="center" mt="sm">
                    <Button
                      variant="light"
                      onClick={() => openFilePicker.current?.()}
                      disabled={sending}
                      aria-describedby={fileMessage ? "file-problem" : undefined}
                    >
                      Choose a file…
                    </Button>
                  </Group>
                </Dropzone>
                {file && <FileSummary file={file} onRemove={() => { setFile(null); }} disabled={sending} />}
                {fileMessage && (
                  <Text id="file-problem" size="sm" c="red.9" role="alert">
                    {fileMessage}
                  </Text>
                )}
              </Stack>
            </Paper>
            <Paper withBorder radius="md" p="md">
              <Stack gap="lg">
                <RowsEditor
                  legend="Metrics"
                  description="How it scored, e.g. roc_auc = 0.91 (names: letters, digits, '.', '_', '/', '-')."
                  rows={form.metrics}
                  problems={rowErrors("metricRows", "metrics")}
                  groupProblem={fieldError("metrics")}
                  keyLabel="Metric name"
                  valueLabel="Metric value"
                  keyPlaceholder="roc_auc"
                  valuePlaceholder="0.91"
                  valueInputMode="decimal"
                  addLabel="Add a metric"
                  onChange={(rows) => {
                    edit({ metrics: rows }, "metrics");
                  }}
                  onTouched={() => {
                    setTouched((t) => ({ ...t, metrics: true }));
                  }}
                  disabled={sending}
                />
                <RowsEditor
                  legend="Labels"
                  description="Free-form tags, e.g. team = reliability (keys: lower-case letters, digits, '.', '_', '/', '-')."
                  rows={form.labels}
                  problems={rowErrors("labelRows", "labels")}
                  groupProblem={fieldError("labels")}
                  keyLabel="Label key"
                  valueLabel="Label value"
                  keyPlaceholder="team"
                  valuePlaceholder="reliability"
                  addLabel="Add a label"
                  onChange={(rows) => {
                    edit({ labels: rows }, "labels");
                  }}
                  onTouched={() => {
                    setTouched((t) => ({ ...t, labels: true }));
                  }}
                  disabled={sending}
                />
              </Stack>
            </Paper>
          </Stack>
        </SimpleGrid>

        <Paper withBorder radius="md" p="md" mt="lg">
          <Stack gap="sm">
            {state.phase === "failed" && (
              <div ref={resultRef} tabIndex={-1} style={{ outline: "none" }}>
                <ErrorAlert error={state.error} context="upload" />
                {server.other.length > 0 && (
                  <Text size="sm" c="red.9" mt={6}>
                    {server.other.join("; ")}
                  </Text>
                )}
              </div>
            )}
            {state.phase === "sending" && (
              <Stack gap={6}>
                <Progress
                  value={state.progress.total ? (100 * state.progress.loaded) / state.progress.total : 0}
                  size="lg"
                  radius="xl"
                  animated
                  aria-label="Upload progress"
                />
                <Group justify="space-between" gap="xs" wrap="wrap">
                  <Text size="sm" aria-live="polite" style={{ fontVariantNumeric: "tabular-nums" }}>
                    {state.progress.loaded >= state.progress.total && state.progress.total > 0
                      ? "Sent; the registry is checking the model…"
                      : `${formatBytes(state.progress.loaded)} of ${formatBytes(state.progress.total)}`}
                  </Text>
                  <Text size="sm" c="dimmed" style={{ fontVariantNumeric: "tabular-nums" }}>
                    {formatRate(state.progress.bytesPerSecond)}
                  </Text>
                </Group>
              </Stack>
            )}
            <Group justify="flex-end" gap="sm">
              {sending ? (
                <Button key="cancel" type="button" color="red" variant="light" onClick={upload.cancel}>
                  Cancel upload
                </Button>
              ) : (
                <Button key="upload" type="submit" leftSection={<IconFileUpload size={16} aria-hidden />}>
                  Upload
                </Button>
              )}
            </Group>
          </Stack>
        </Paper>
      </form>
    </>
  );
}
