// The charts of an asset view: one small chart per tag (average line, min–max band, failures
// shaded), drawn with @mantine/charts (Recharts). This module is its own lazy chunk: the
// charting library loads only when a chart is shown, not with the app.
import "@mantine/charts/styles.css";

import { CompositeChart } from "@mantine/charts";
import { Box, Button, Collapse, Group, Paper, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { memo, useId, useMemo, useState } from "react";
import { ReferenceArea } from "recharts";

import type { HistoryChart, TagSeries } from "../../api/history";
import { formatLocal, formatUtc } from "../../components/format";
import {
  axisNumber,
  type ChartPoint,
  chartPoints,
  type FailureArea,
  seriesSummary,
  shortNumber,
  tickLabel,
  timeTicks,
} from "./chartData";

export interface HistoryChartsProps {
  chart: HistoryChart;
  startMs: number;
  endMs: number;
  resolutionSeconds: number;
  failures: readonly FailureArea[];
  /** Tag names in the order to show the charts (the asset's); others follow. */
  order?: readonly string[];
}

export default function HistoryCharts({ chart, startMs, endMs, resolutionSeconds, failures, order }: HistoryChartsProps) {
  const { ticks, step } = useMemo(() => timeTicks(startMs, endMs), [startMs, endMs]);
  const ordered = useMemo(() => {
    if (!order?.length) return chart.series;
    const rank = (tag: string) => {
      const i = order.indexOf(tag);
      return i < 0 ? order.length : i;
    };
    return [...chart.series].sort((a, b) => rank(a.tag) - rank(b.tag));
  }, [chart.series, order]);
  return (
    <SimpleGrid cols={{ base: 1, lg: 2 }} spacing="md">
      {ordered.map((series) => (
        <TagChart
          key={series.tag}
          series={series}
          startMs={startMs}
          endMs={endMs}
          resolutionSeconds={resolutionSeconds}
          failures={failures}
          ticks={ticks}
          tickStep={step}
        />
      ))}
    </SimpleGrid>
  );
}

interface TooltipArgs {
  active?: boolean;
  payload?: { payload?: ChartPoint }[];
}

function PointTooltip({ active, payload, unit }: TooltipArgs & { unit: string }) {
  const point = payload?.[0]?.payload;
  if (!active || !point || point.avg === null) return null;
  const iso = new Date(point.t).toISOString();
  const u = unit ? ` ${unit}` : "";
  return (
    <Paper shadow="md" p="xs" withBorder radius="sm" style={{ pointerEvents: "none" }}>
      <Text size="xs" fw={600}>
        {formatLocal(iso)}
      </Text>
      <Text size="xs" c="dimmed">
        {formatUtc(iso)}
      </Text>
      <Text size="xs" mt={4}>
        average {shortNumber(point.avg)}
        {u}
      </Text>
      {point.min !== null && point.max !== null && (
        <Text size="xs">
          min {shortNumber(point.min)} · max {shortNumber(point.max)}
          {u}
        </Text>
      )}
      <Text size="xs" c="dimmed">
        {point.count.toLocaleString()} samples
      </Text>
    </Paper>
  );
}

const SERIES = [
  { name: "band", label: "min–max", type: "area" as const, color: "blue.3" },
  { name: "avg", label: "average", type: "line" as const, color: "blue.8" },
];

const TagChart = memo(function TagChart({
  series,
  startMs,
  endMs,
  resolutionSeconds,
  failures,
  ticks,
  tickStep,
}: {
  series: TagSeries;
  startMs: number;
  endMs: number;
  resolutionSeconds: number;
  failures: readonly FailureArea[];
  ticks: number[];
  tickStep: number;
}) {
  const [showTable, setShowTable] = useState(false);
  const titleId = useId();
  const tableId = useId();
  const data = useMemo(
    () => chartPoints(series.buckets, resolutionSeconds * 1000, startMs),
    [series.buckets, resolutionSeconds, startMs],
  );
  const summary = seriesSummary(series, resolutionSeconds, failures.length);
  return (
    <Paper withBorder radius="md" p="sm" component="figure" m={0} aria-labelledby={titleId} style={{ minWidth: 0 }}>
      <Group justify="space-between" wrap="nowrap" gap="xs" align="baseline">
        <Title order={3} size="h5" id={titleId} style={{ minWidth: 0, overflowWrap: "anywhere" }}>
          {series.tag}
          {series.unit ? " " : ""}
          {series.unit && (
            <Text span c="dimmed" size="sm" fw={400}>
              ({series.unit})
            </Text>
          )}
        </Title>
      </Group>
      {series.description && (
        <Text size="xs" c="dimmed" truncate="end" title={series.description}>
          {series.description}
        </Text>
      )}
      <div aria-hidden style={{ marginTop: 8 }}>
        {data.length === 0 ? (
          <Stack h={200} justify="center" align="center">
            <Text size="sm" c="dimmed">
              No samples in this range
            </Text>
          </Stack>
        ) : (
          <CompositeChart
            h={200}
            data={data}
            dataKey="t"
            series={SERIES}
            withDots={false}
            connectNulls={false}
            curveType="linear"
            strokeWidth={1.5}
            gridAxis="xy"
            tickLine="none"
            xAxisProps={{
              type: "number",
              scale: "time",
              domain: [startMs, endMs],
              ticks,
              tickFormatter: (value: number) => tickLabel(value, tickStep),
              allowDataOverflow: true,
            }}
            yAxisProps={{ domain: ["auto", "auto"], width: 52 }}
            valueFormatter={axisNumber}
            areaProps={{ strokeOpacity: 0, fillOpacity: 0.45 }}
            tooltipProps={{
              content: ({ active, payload }: TooltipArgs) => (
                <PointTooltip active={active} payload={payload} unit={series.unit} />
              ),
            }}
          >
            {failures.map((f) => (
              <ReferenceArea
                key={`${f.event.startTime ?? ""}-${f.event.failureMode ?? ""}`}
                x1={f.x1}
                x2={f.x2}
                yAxisId="left"
                ifOverflow="hidden"
                fill="var(--mantine-color-red-6)"
                fillOpacity={f.ongoing ? 0.22 : 0.16}
                stroke="var(--mantine-color-red-7)"
                strokeOpacity={0.5}
              />
            ))}
          </CompositeChart>
        )}
      </div>
      <Text size="xs" c="dimmed" component="figcaption" mt={4}>
        {summary}
      </Text>
      {data.length > 0 && (
        <>
          <Button
            variant="subtle"
            size="compact-xs"
            mt={4}
            onClick={() => {
              setShowTable((v) => !v);
            }}
            aria-expanded={showTable}
            aria-controls={tableId}
            aria-label={`${showTable ? "Hide" : "Show"} the numbers of ${series.tag}`}
          >
            {showTable ? "Hide the numbers" : "Show the numbers"}
          </Button>
          <Collapse in={showTable} id={tableId}>
            {showTable && <SeriesTable series={series} />}
          </Collapse>
        </>
      )}
    </Paper>
  );
});

/** The chart's numbers as a table: the accessible alternative to the drawing. */
function SeriesTable({ series }: { series: TagSeries }) {
  const u = series.unit ? ` (${series.unit})` : "";
  return (
    // Focusable, so that a keyboard can scroll it.
    <Box mah={320} mt="xs" style={{ overflow: "auto" }} tabIndex={0} role="region" aria-label={`${series.tag}: the numbers`}>
      <Table striped withTableBorder verticalSpacing={4} fz="xs" stickyHeader>
        <caption style={{ captionSide: "top", textAlign: "left", fontSize: "var(--mantine-font-size-xs)" }}>
          {series.tag}: average, lowest and highest value per bucket{u}; times in your zone
        </caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Bucket start</Table.Th>
            <Table.Th ta="right">Average</Table.Th>
            <Table.Th ta="right">Min</Table.Th>
            <Table.Th ta="right">Max</Table.Th>
            <Table.Th ta="right">Samples</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody style={{ fontVariantNumeric: "tabular-nums" }}>
          {series.buckets.map((b) => {
            const iso = new Date(b.t).toISOString();
            return (
              <Table.Tr key={b.t}>
                <Table.Td>
                  <time dateTime={iso} title={formatUtc(iso)}>
                    {formatLocal(iso)}
                  </time>
                </Table.Td>
                <Table.Td ta="right">{b.avg === null ? "—" : shortNumber(b.avg)}</Table.Td>
                <Table.Td ta="right">{b.min === null ? "—" : shortNumber(b.min)}</Table.Td>
                <Table.Td ta="right">{b.max === null ? "—" : shortNumber(b.max)}</Table.Td>
                <Table.Td ta="right">{b.count.toLocaleString()}</Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </Box>
  );
}
