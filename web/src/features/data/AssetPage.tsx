import {
  Box,
  Button,
  Group,
  Loader,
  MultiSelect,
  Paper,
  SegmentedControl,
  Select,
  SimpleGrid,
  Skeleton,
  Stack,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { skipToken } from "@reduxjs/toolkit/query/react";
import { lazy, Suspense, useMemo, useState } from "react";
import { useParams, useSearchParams } from "react-router";

import {
  type HistoryArgs,
  useGetAssetQuery,
  useGetHistoryQuery,
  useListFailureEventsQuery,
} from "../../api/api";
import { asApiError, type ApiError } from "../../api/errors";
import { useAppSelector } from "../../app/hooks";
import { can } from "../../app/navigation";
import { selectRoles } from "../../auth/authSlice";
import { ROLE_DATA_SCIENTIST } from "../../auth/jwt";
import { ErrorAlert } from "../../components/ErrorAlert";
import { formatLocal, formatUtc } from "../../components/format";
import { PageLoader } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { Time } from "../../components/Time";
import type { AssetJson, FailureEventJson } from "../../gen/mlplane/v1/query_service_pb";
import { Breadcrumbs } from "../models/Breadcrumbs";
import { tagTitle } from "./AssetsPage";
import { failureAreas, overlaps } from "./chartData";
import { type ExportGranularity, ExportPanel } from "./ExportPanel";
import { FailureEventsSection } from "./FailureEvents";
import {
  chooseResolution,
  RESOLUTION_LADDER,
  resolutionLabel,
  resolutionProblem,
  resolutionAdjective,
} from "./resolution";
import {
  checkRange,
  fromLocalInput,
  isoSeconds,
  isPreset,
  PRESET_LABELS,
  presetAnchor,
  presetRange,
  type Preset,
  PRESETS,
  type RangeChoice,
  rangeSeconds,
  spanWords,
  type TimeRange,
  toLocalInput,
} from "./timeRange";

const HistoryCharts = lazy(() => import("./HistoryCharts"));

/** How far before the range failures are read, to shade one that began earlier and lasts into it. */
export const FAILURE_LOOKBACK_DAYS = 30;
/** When the asset's tags are unknown (not in the readable list), assume this many for bucket choice. */
const UNKNOWN_TAG_COUNT = 10;

const DEFAULT_RANGE: Preset = "7d";

function ChartsSkeleton({ count }: { count: number }) {
  return (
    <SimpleGrid cols={{ base: 1, lg: 2 }} spacing="md" role="status" aria-label="Loading the charts">
      {Array.from({ length: Math.max(1, Math.min(count, 4)) }, (_, i) => (
        <Skeleton key={i} height={290} radius="md" />
      ))}
    </SimpleGrid>
  );
}

function Legend({ failures, showFailures }: { failures: number; showFailures: boolean }) {
  const swatch = (style: React.CSSProperties) => (
    <Box component="span" aria-hidden style={{ display: "inline-block", width: 18, height: 10, borderRadius: 2, ...style }} />
  );
  return (
    <Group gap="lg" wrap="wrap" aria-label="Chart key" role="list">
      <Group gap={6} wrap="nowrap" role="listitem">
        {swatch({ height: 2, background: "var(--mantine-color-blue-8)" })}
        <Text size="xs">average per bucket</Text>
      </Group>
      <Group gap={6} wrap="nowrap" role="listitem">
        {swatch({ background: "var(--mantine-color-blue-3)", opacity: 0.6 })}
        <Text size="xs">lowest to highest in the bucket</Text>
      </Group>
      {showFailures && (
        <Group gap={6} wrap="nowrap" role="listitem">
          {swatch({ background: "var(--mantine-color-red-6)", opacity: 0.3, border: "1px solid var(--mantine-color-red-7)" })}
          <Text size="xs">
            failure ({failures} in range{failures ? ", listed below" : ""})
          </Text>
        </Group>
      )}
    </Group>
  );
}

/** The custom range's pickers: applied with "Show" (every view is an export on the server). */
function CustomRange({
  initial,
  onApply,
}: {
  initial: TimeRange;
  onApply: (range: TimeRange) => void;
}) {
  const [start, setStart] = useState(() => toLocalInput(initial.start));
  const [end, setEnd] = useState(() => toLocalInput(initial.end));
  const [touched, setTouched] = useState(false);
  const startIso = fromLocalInput(start);
  const endIso = fromLocalInput(end);
  const errors = checkRange(startIso, endIso);
  const valid = !errors.start && !errors.end;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return (
    <Box
      component="form"
      onSubmit={(e: React.FormEvent) => {
        e.preventDefault();
        setTouched(true);
        if (valid && startIso && endIso) onApply({ start: startIso, end: endIso });
      }}
    >
      <Group align="flex-start" gap="sm" wrap="wrap">
        <TextInput
          type="datetime-local"
          label="Start"
          description={`Your time (${zone})`}
          value={start}
          onChange={(e) => {
            setStart(e.currentTarget.value);
          }}
          error={touched || start ? errors.start : undefined}
          style={{ flex: "1 1 13rem", maxWidth: 260 }}
        />
        <TextInput
          type="datetime-local"
          label="End"
          description="Up to, not including"
          value={end}
          onChange={(e) => {
            setEnd(e.currentTarget.value);
          }}
          error={touched || end ? errors.end : undefined}
          style={{ flex: "1 1 13rem", maxWidth: 260 }}
        />
        <Button type="submit" mt={{ base: 0, xs: 44 }} variant="light">
          Show this range
        </Button>
      </Group>
    </Box>
  );
}

/** The failures overlapping the range, and their shaded areas (the same objects while nothing changes). */
function useFailuresInRange(events: FailureEventJson[] | undefined, rangeStart: string, rangeEnd: string) {
  return useMemo(() => {
    const from = Date.parse(rangeStart);
    const to = Date.parse(rangeEnd);
    const overlapping = (events ?? []).filter((e) => overlaps(e, from, to));
    return { inRange: overlapping, areas: failureAreas(overlapping, from, to) };
  }, [events, rangeStart, rangeEnd]);
}

/** An asset's history: range, tags and resolution; charts with failures; CSV and Python. */
export default function AssetPage() {
  const { assetId = "" } = useParams();
  const roles = useAppSelector(selectRoles);
  const isScientist = can(roles, ROLE_DATA_SCIENTIST);
  const [params, setParams] = useSearchParams();
  // "Now" is fixed when the page opens, so that the view's queries stay the same.
  const [nowMs] = useState(() => Date.now());
  const assetQuery = useGetAssetQuery(assetId, { skip: !assetId });
  const asset: AssetJson | undefined = assetQuery.data;

  const setParam = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) next.delete(key);
      else next.set(key, value);
    }
    setParams(next, { replace: true });
  };

  // --- range ---------------------------------------------------------------------------
  const rawRange = params.get("range");
  const choice: RangeChoice = rawRange === "custom" ? "custom" : isPreset(rawRange) ? rawRange : DEFAULT_RANGE;
  const anchor = presetAnchor(asset?.lastTime, nowMs);
  const presetForCustom = presetRange(DEFAULT_RANGE, anchor);
  const customStart = params.get("start");
  const customEnd = params.get("end");
  const customValid =
    customStart !== null &&
    customEnd !== null &&
    Object.keys(checkRange(customStart, customEnd)).length === 0 &&
    !Number.isNaN(Date.parse(customStart));
  const range: TimeRange | null =
    choice === "custom"
      ? customValid
        ? { start: isoSeconds(Date.parse(customStart)), end: isoSeconds(Date.parse(customEnd)) }
        : null
      : presetRange(choice, anchor);
  const seconds = range ? rangeSeconds(range) : 0;

  // --- tags ----------------------------------------------------------------------------
  const allTags = useMemo(() => (asset?.tags ?? []).map((t) => t.name ?? ""), [asset]);
  const rawTags = params.get("tags");
  const pickTags = (raw: string | null) => {
    if (raw === null) return allTags;
    const wanted = raw.split(",").filter(Boolean);
    return allTags.length ? allTags.filter((t) => wanted.includes(t)) : wanted;
  };
  const selected = pickTags(rawTags);
  // Choosing tags one after another makes one export, not one per click.
  const [settledTags] = useDebouncedValue(rawTags, 400);
  const requested = pickTags(settledTags);
  /** What a request sends: empty means all of the asset's tags. */
  const tagsToSend = (tags: string[]) => (allTags.length === 0 || tags.length === allTags.length ? [] : tags);
  const tagCount = selected.length || allTags.length || UNKNOWN_TAG_COUNT;

  // --- resolution ----------------------------------------------------------------------
  const auto = seconds > 0 ? chooseResolution(seconds, tagCount) : 60;
  const rawRes = params.get("res");
  const chosen = rawRes && /^\d+$/.test(rawRes) ? Number(rawRes) : null;
  const chosenProblem = chosen !== null && seconds > 0 ? resolutionProblem(seconds, tagCount, chosen) : null;
  const resolution = chosen !== null && !chosenProblem ? chosen : auto;
  const resolutionOptions = [
    { value: "auto", label: `Auto (${resolutionLabel(auto)})` },
    ...RESOLUTION_LADDER.map((step) => {
      const problem = seconds > 0 ? resolutionProblem(seconds, tagCount, step) : null;
      return { value: String(step), label: resolutionLabel(step), disabled: problem !== null };
    }),
  ];

  // --- data ----------------------------------------------------------------------------
  const nothingSelected = asset !== undefined && allTags.length > 0 && selected.length === 0;
  const historyArgs: HistoryArgs | typeof skipToken =
    range && assetQuery.isSuccess && !nothingSelected && !(allTags.length > 0 && requested.length === 0)
      ? {
          assetId,
          startTime: range.start,
          endTime: range.end,
          tags: tagsToSend(requested),
          resolutionSeconds: resolution,
        }
      : skipToken;
  const history = useGetHistoryQuery(historyArgs);
  const historyError = history.error ? asApiError(history.error) : null;
  const showEvents = isScientist;
  const events = useListFailureEventsQuery(
    range
      ? {
          assetId,
          startTime: isoSeconds(Date.parse(range.start) - FAILURE_LOOKBACK_DAYS * 86_400_000),
          endTime: range.end,
        }
      : { assetId, startTime: "", endTime: "" },
    { skip: !range || !showEvents || !assetQuery.isSuccess },
  );
  const startMs = range ? Date.parse(range.start) : 0;
  const endMs = range ? Date.parse(range.end) : 0;
  const eventList = events.data?.events;
  const rangeStart = range?.start ?? "";
  const rangeEnd = range?.end ?? "";
  const { inRange, areas } = useFailuresInRange(eventList, rangeStart, rangeEnd);

  // --- page ----------------------------------------------------------------------------
  const crumbs = <Breadcrumbs root={{ label: "Data", to: "/data" }} items={[{ label: assetId }]} />;
  if (assetQuery.error) {
    return (
      <>
        {crumbs}
        <PageHeader title={assetId} docTitle={assetId} />
        <ErrorAlert error={asApiError(assetQuery.error)} onRetry={() => void assetQuery.refetch()} />
      </>
    );
  }
  if (assetQuery.isLoading || asset === undefined) return <PageLoader label="Loading the asset" />;
  const title = asset.displayName || assetId;
  const rangeText = range
    ? `${formatLocal(range.start)} – ${formatLocal(range.end)} (${spanWords(endMs - startMs)})`
    : "Choose a start and an end";
  const disabledReason = !range
    ? "Choose a valid time range first."
    : nothingSelected
      ? "Choose at least one tag first."
      : null;

  return (
    <>
      {crumbs}
      <PageHeader title={title} docTitle={assetId}>
        <Group gap="lg" wrap="wrap">
          {asset.displayName && (
            <Text size="sm" ff="monospace" c="dimmed" style={{ overflowWrap: "anywhere" }}>
              {assetId}
            </Text>
          )}
          {asset.firstTime && (
            <Text size="sm" c="dimmed">
              History <Time value={asset.firstTime} /> – <Time value={asset.lastTime} />
            </Text>
          )}
        </Group>
      </PageHeader>

      <Stack gap="md">
        <Paper withBorder radius="md" p="md" component="section" aria-label="What to show">
          <Stack gap="sm">
            <Group gap="md" align="flex-end" wrap="wrap">
              <Stack gap={4}>
                <Text size="sm" fw={500} id="range-label">
                  Time range
                </Text>
                <SegmentedControl
                  aria-labelledby="range-label"
                  value={choice}
                  onChange={(value) => {
                    if (value === "custom") {
                      const from = range ?? presetForCustom;
                      setParam({ range: "custom", start: from.start, end: from.end });
                    } else {
                      setParam({ range: value, start: null, end: null });
                    }
                  }}
                  data={[...PRESETS, "custom" as const].map((p) => ({ value: p, label: PRESET_LABELS[p] }))}
                />
              </Stack>
              <MultiSelect
                label="Tags"
                placeholder={selected.length ? undefined : "Choose tags"}
                data={(asset.tags ?? []).map((t) => ({ value: t.name ?? "", label: t.unit ? `${t.name ?? ""} (${t.unit})` : (t.name ?? "") }))}
                value={selected}
                onChange={(value) => {
                  setParam({ tags: value.length === allTags.length ? null : value.join(",") });
                }}
                disabled={!asset}
                clearable
                searchable
                hidePickedOptions={false}
                error={nothingSelected ? "Choose at least one tag" : undefined}
                style={{ flex: "1 1 16rem", minWidth: 0 }}
                maxDropdownHeight={280}
                comboboxProps={{ withinPortal: true }}
              />
              <Select
                label="Resolution"
                data={resolutionOptions}
                value={chosen !== null && !chosenProblem ? String(chosen) : "auto"}
                onChange={(value) => {
                  setParam({ res: value && value !== "auto" ? value : null });
                }}
                allowDeselect={false}
                style={{ flex: "0 1 10rem" }}
                maxDropdownHeight={280}
                description="Bucket width"
              />
            </Group>
            {choice === "custom" && (
              <CustomRange
                key={`${customStart ?? ""}|${customEnd ?? ""}`}
                initial={range ?? presetForCustom}
                onApply={(r) => {
                  setParam({ range: "custom", start: r.start, end: r.end });
                }}
              />
            )}
            <Text size="sm" c="dimmed" aria-live="polite">
              {rangeText}
              {range && ` · ${resolutionAdjective(resolution)} buckets`}
              {choice !== "custom" && asset.lastTime ? " · ending at the newest sample" : ""}
              {range && (
                <Text span size="xs" c="dimmed" title={`${formatUtc(range.start)} – ${formatUtc(range.end)}`}>
                  {" "}
                  (UTC on hover)
                </Text>
              )}
            </Text>
            {chosen !== null && chosenProblem && (
              <Text size="sm" c="yellow.9">
                {resolutionLabel(chosen)} buckets {chosenProblem === "longer-than-range" ? "are longer than the range" : "would be too many points for this range and these tags"}
                : showing {resolutionLabel(auto)} instead.
              </Text>
            )}
          </Stack>
        </Paper>

        <Paper withBorder radius="md" p="md" component="section" aria-labelledby="history-title">
          <Stack gap="sm">
            <Group justify="space-between" wrap="wrap" gap="xs">
              <Title order={2} size="h4" id="history-title">
                History
              </Title>
              {history.isFetching && (
                <Group gap={6} role="status">
                  <Loader size="xs" aria-hidden />
                  <Text size="xs" c="dimmed">
                    Loading
                  </Text>
                </Group>
              )}
            </Group>
            <Legend failures={inRange.length} showFailures={showEvents && !events.error} />
            <ChartsBody
              error={historyError}
              onRetry={() => void history.refetch()}
              waitingFor={disabledReason}
              loading={history.isLoading || (history.isFetching && !history.data)}
              tagCount={tagCount}
            >
              {history.data && range && (
                <Box style={{ opacity: history.isFetching ? 0.6 : 1, transition: "opacity 150ms" }}>
                  <Suspense fallback={<ChartsSkeleton count={history.data.series.length} />}>
                    <HistoryCharts
                      chart={history.data}
                      startMs={startMs}
                      endMs={endMs}
                      resolutionSeconds={resolution}
                      failures={areas}
                      order={allTags}
                    />
                  </Suspense>
                </Box>
              )}
            </ChartsBody>
          </Stack>
        </Paper>

        <FailureEventsSection
          events={inRange}
          loading={events.isLoading || events.isFetching}
          error={events.error ? asApiError(events.error) : null}
          hiddenReason={showEvents ? null : "Failure events are for data scientists only: your role may read the history, not its failure labels."}
          truncated={events.data?.truncated ?? false}
          nowMs={nowMs}
        />

        <ExportPanel
          query={{
            assetId,
            startTime: range?.start ?? "",
            endTime: range?.end ?? "",
            tags: tagsToSend(selected),
          }}
          chartResolution={resolution}
          granularity={params.get("export") === "buckets" ? "buckets" : "raw"}
          onGranularity={(value: ExportGranularity) => {
            setParam({ export: value === "raw" ? null : value });
          }}
          disabled={disabledReason}
        />

        {asset.tags && asset.tags.length > 0 && (
          <Text size="xs" c="dimmed">
            Tags: {asset.tags.map(tagTitle).join(" · ")}
          </Text>
        )}
      </Stack>
    </>
  );
}

function ChartsBody({
  error,
  onRetry,
  waitingFor,
  loading,
  tagCount,
  children,
}: {
  error: ApiError | null;
  onRetry: () => void;
  waitingFor: string | null;
  loading: boolean;
  tagCount: number;
  children: React.ReactNode;
}) {
  if (waitingFor) {
    return (
      <Text size="sm" c="dimmed">
        {waitingFor}
      </Text>
    );
  }
  if (error) return <ErrorAlert error={error} onRetry={onRetry} />;
  if (loading) return <ChartsSkeleton count={tagCount} />;
  return <>{children}</>;
}
