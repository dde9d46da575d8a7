import {
  Alert,
  Anchor,
  Button,
  Code,
  Collapse,
  CopyButton,
  Group,
  Loader,
  Paper,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Text,
  Title,
} from "@mantine/core";
import { IconBrandPython, IconCheck, IconCircleCheck, IconClockPause, IconDownload } from "@tabler/icons-react";
import { useId, useState } from "react";
import { Link } from "react-router";

import { statusWords } from "../../api/errors";
import { CopyValue } from "../../components/CopyValue";
import { ErrorAlert } from "../../components/ErrorAlert";
import { int64 } from "../../components/format";
import type { ExportJson } from "../../gen/mlplane/v1/query_service_pb";
import { Fact } from "../models/ModelPage";
import { type ExportQuery, pythonSnippet } from "./python";
import { resolutionAdjective } from "./resolution";
import { type CsvExportState, type PollOptions, useCsvExport } from "./useCsvExport";

export type ExportGranularity = "raw" | "buckets";

/** Alert titles in the text colour: the light variants' coloured titles are below 4.5:1 on their tint. */
const TITLE = { title: { color: "var(--mantine-color-text)" } };

/**
 * "Export this view": the CSV download that streams to disk (a signed link, then the
 * manifest: export id, rows, SHA-256) and the Python lines that fetch the same export.
 */
export function ExportPanel({
  query,
  chartResolution,
  granularity,
  onGranularity,
  disabled,
  poll,
}: {
  /** The view's asset, range and tags; `resolutionSeconds` is set from `granularity`. */
  query: Omit<ExportQuery, "resolutionSeconds">;
  /** The charts' bucket width in seconds. */
  chartResolution: number;
  granularity: ExportGranularity;
  onGranularity: (value: ExportGranularity) => void;
  /** Why nothing can be exported yet (no tags chosen, an invalid range), or null. */
  disabled: string | null;
  poll?: PollOptions;
}) {
  const csv = useCsvExport(poll);
  const [showCode, setShowCode] = useState(false);
  const codeId = useId();
  const full: ExportQuery = { ...query, resolutionSeconds: granularity === "raw" ? null : chartResolution };
  const snippet = pythonSnippet(full);
  const busy = csv.state.phase === "linking" || csv.state.phase === "waiting" || csv.state.phase === "running";

  return (
    <Paper withBorder radius="md" p="md" component="section" aria-labelledby="export-title">
      <Stack gap="sm">
        <Group justify="space-between" align="flex-start" wrap="wrap" gap="sm">
          <Stack gap={2} style={{ minWidth: 0, flex: "1 1 16rem" }}>
            <Title order={2} size="h4" id="export-title">
              Export this view
            </Title>
            <Text size="sm" c="dimmed">
              The same range and tags as the charts, as a CSV file or in a notebook. Every export is recorded with
              its row count and SHA-256, and a model version can cite it as training data.
            </Text>
          </Stack>
          <SegmentedControl
            aria-label="What to export"
            value={granularity}
            onChange={(value) => {
              onGranularity(value === "buckets" ? "buckets" : "raw");
            }}
            data={[
              { value: "raw", label: "Raw samples" },
              { value: "buckets", label: `${resolutionAdjective(chartResolution)} buckets` },
            ]}
          />
        </Group>
        <Group gap="sm" wrap="wrap">
          <Button
            leftSection={<IconDownload size={16} aria-hidden />}
            onClick={() => void csv.start(full)}
            loading={csv.state.phase === "linking"}
            disabled={Boolean(disabled) || busy}
          >
            Download CSV
          </Button>
          <CopyButton value={snippet} timeout={2000}>
            {({ copied, copy }) => (
              <Button
                variant="default"
                leftSection={copied ? <IconCheck size={16} aria-hidden /> : <IconBrandPython size={16} aria-hidden />}
                onClick={copy}
                disabled={Boolean(disabled)}
                aria-describedby={codeId}
              >
                {copied ? "Copied the Python lines" : "Python"}
              </Button>
            )}
          </CopyButton>
          <Button
            variant="subtle"
            size="compact-sm"
            onClick={() => {
              setShowCode((v) => !v);
            }}
            aria-expanded={showCode}
            aria-controls={`${codeId}-code`}
          >
            {showCode ? "Hide the code" : "Show the code"}
          </Button>
        </Group>
        <Text size="xs" c="dimmed" id={codeId}>
          {disabled ??
            `“Python” copies the SDK lines (mlplane_client) that fetch this export into a pandas DataFrame; MLPLANE_URL is ${window.location.origin} here.`}
        </Text>
        <Collapse in={showCode} id={`${codeId}-code`}>
          <Code block style={{ whiteSpace: "pre-wrap", overflowWrap: "anywhere" }} aria-label="Python lines">
            {snippet}
          </Code>
        </Collapse>
        <div aria-live="polite">
          <DownloadStatus state={csv.state} onCheckAgain={() => void csv.checkAgain()} onRetry={() => void csv.start(full)} />
        </div>
      </Stack>
    </Paper>
  );
}

function DownloadStatus({
  state,
  onCheckAgain,
  onRetry,
}: {
  state: CsvExportState;
  onCheckAgain: () => void;
  onRetry: () => void;
}) {
  switch (state.phase) {
    case "idle":
      return null;
    case "linking":
      return <Pending>Creating a download link…</Pending>;
    case "failed":
      return <ErrorAlert error={state.error} context="download" listViolations />;
    case "waiting":
      return (
        <Pending>
          Your browser is saving <b>{state.download.fileName}</b>. Waiting for the export to start…
        </Pending>
      );
    case "running":
      return (
        <Pending>
          Exporting to <b>{state.download.fileName}</b>: the export is running (id{" "}
          <Text span ff="monospace" size="sm">
            {state.download.exportId}
          </Text>
          ).
        </Pending>
      );
    case "stalled":
      return state.manifest ? (
        <Alert color="blue" variant="light" styles={TITLE} icon={<IconClockPause aria-hidden />} title="Still exporting">
          <Stack gap={6}>
            <Text size="sm">
              The export is still running after a long while. Your browser keeps saving the file; look again later or
              in <ExportLink exportId={state.download.exportId} />.
            </Text>
            <Group>
              <Button size="xs" variant="white" onClick={onCheckAgain}>
                Check again
              </Button>
            </Group>
          </Stack>
        </Alert>
      ) : (
        <Alert color="yellow" variant="light" styles={TITLE} icon={<IconClockPause aria-hidden />} title="The download has not started">
          <Stack gap={6}>
            <Text size="sm">
              The server has not seen the download yet. Check your browser&apos;s downloads: it may have blocked the
              file. A link works once and for 5 minutes, so a new download makes a new one.
            </Text>
            <Group>
              <Button size="xs" variant="white" onClick={onRetry}>
                Download again
              </Button>
              <Button size="xs" variant="subtle" onClick={onCheckAgain}>
                Check again
              </Button>
            </Group>
          </Stack>
        </Alert>
      );
    case "finished":
      return <Finished download={state.download} manifest={state.manifest} onRetry={onRetry} />;
  }
}

function Pending({ children }: { children: React.ReactNode }) {
  return (
    <Group gap="sm" wrap="nowrap" role="status">
      <Loader size="sm" aria-hidden />
      <Text size="sm" style={{ overflowWrap: "anywhere" }}>
        {children}
      </Text>
    </Group>
  );
}

function ExportLink({ exportId }: { exportId: string }) {
  return (
    <Anchor component={Link} to={`/exports/${exportId}`}>
      the export&apos;s page
    </Anchor>
  );
}

function Finished({
  download,
  manifest,
  onRetry,
}: {
  download: { exportId: string; fileName: string };
  manifest: ExportJson;
  onRetry: () => void;
}) {
  const exportId = manifest.exportId ?? download.exportId;
  if (manifest.status !== "COMPLETED") {
    return (
      <Alert color="red" variant="light" styles={TITLE} title={`The export ended ${statusWords(manifest.status ?? "FAILED")}`}>
        <Stack gap={6}>
          <Text size="sm">
            {manifest.status === "CANCELLED"
              ? "The download stopped before the end (cancelled in the browser, or the connection broke)."
              : "The server stopped the export on an error."}{" "}
            The file <b>{download.fileName}</b> on disk is incomplete: delete it and download again.
          </Text>
          <Group>
            <Button size="xs" variant="white" color="red" onClick={onRetry}>
              Download again
            </Button>
          </Group>
        </Stack>
      </Alert>
    );
  }
  const rows = int64(manifest.rowCount);
  const command = `sha256sum ${download.fileName}`;
  return (
    <Alert color="teal" variant="light" styles={TITLE} icon={<IconCircleCheck aria-hidden />} title="Export completed">
      <Stack gap="sm">
        <Text size="sm">
          <b>{download.fileName}</b> is in your downloads. Cite the export id as a model&apos;s training data.
        </Text>
        <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
          <Fact label="Export ID">
            <CopyValue value={exportId} label="export id" />
          </Fact>
          <Fact label="Rows">
            <span style={{ fontVariantNumeric: "tabular-nums" }}>{rows.toLocaleString()}</span>
          </Fact>
        </SimpleGrid>
        <Fact label="SHA-256 of the file">
          <CopyValue value={manifest.sha256 ?? ""} label="SHA-256" />
        </Fact>
        <Text size="sm">
          The file on disk hashes to this SHA-256: check it with{" "}
          <Code>{command}</Code>. See also <ExportLink exportId={exportId} />.
        </Text>
      </Stack>
    </Alert>
  );
}
