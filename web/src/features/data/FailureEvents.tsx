import { Badge, Paper, Skeleton, Stack, Table, Text, Title } from "@mantine/core";

import { type ApiError, describeError } from "../../api/errors";
import { Time } from "../../components/Time";
import type { FailureEventJson } from "../../gen/mlplane/v1/query_service_pb";
import { spanWords } from "./timeRange";

function duration(event: FailureEventJson, nowMs: number): string {
  const from = Date.parse(event.startTime ?? "");
  const to = event.endTime ? Date.parse(event.endTime) : nowMs;
  if (Number.isNaN(from) || Number.isNaN(to) || to < from) return "—";
  return event.endTime ? spanWords(to - from) : `${spanWords(to - from)} so far`;
}

/** The asset's failures in the view's range, as a table below the charts (shaded on them). */
export function FailureEventsSection({
  events,
  loading,
  error,
  hiddenReason,
  truncated,
  nowMs,
}: {
  events: readonly FailureEventJson[];
  loading: boolean;
  error: ApiError | null;
  /** Why failures are not shown (a role that may not read them), or null. */
  hiddenReason: string | null;
  truncated: boolean;
  nowMs: number;
}) {
  let body: React.ReactNode;
  if (hiddenReason) {
    body = (
      <Text size="sm" c="dimmed">
        {hiddenReason}
      </Text>
    );
  } else if (error) {
    // Quietly: the charts still work without their labels.
    const text = describeError(error);
    body = (
      <Text size="sm" c="dimmed" style={{ overflowWrap: "anywhere" }}>
        Failures could not be shown: {text.detail ?? text.title}
        {error.reason ? ` (${error.reason})` : ""}
      </Text>
    );
  } else if (loading) {
    body = <Skeleton height={60} radius="sm" aria-label="Loading failures" />;
  } else if (events.length === 0) {
    body = (
      <Text size="sm" c="dimmed">
        No failures recorded in this range.
      </Text>
    );
  } else {
    body = (
      <Table.ScrollContainer minWidth={640}>
        <Table verticalSpacing="xs" layout="fixed" striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th w={185}>Down from – until</Table.Th>
              <Table.Th w={110}>For</Table.Th>
              <Table.Th w={165}>Failure mode</Table.Th>
              <Table.Th>Description</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {events.map((event) => (
              <Table.Tr key={`${event.startTime ?? ""}-${event.failureMode ?? ""}`}>
                <Table.Td>
                  <Text size="sm" component="div">
                    <Time value={event.startTime} />
                  </Text>
                  {event.endTime ? (
                    <Text size="sm" component="div">
                      – <Time value={event.endTime} />
                    </Text>
                  ) : (
                    <Badge color="red" variant="light" c="red.9" tt="none" radius="sm" mt={2}>
                      Still down
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{duration(event, nowMs)}</Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm" ff="monospace" truncate="end" title={event.failureMode}>
                    {event.failureMode || "—"}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm" style={{ overflowWrap: "anywhere" }}>
                    {event.description || "—"}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    );
  }
  return (
    <Paper withBorder radius="md" p="md" component="section" aria-labelledby="failures-title">
      <Stack gap="sm">
        <Stack gap={2}>
          <Title order={2} size="h4" id="failures-title">
            Failures{events.length > 0 && !hiddenReason && !error ? ` (${events.length})` : ""}
          </Title>
          {!hiddenReason && !error && (
            <Text size="sm" c="dimmed">
              Recorded failures of this asset in the range, shaded red on the charts: the labels for training a
              failure predictor.
              {truncated ? " Only the first 10,000 are listed: choose a shorter range to see the rest." : ""}
            </Text>
          )}
        </Stack>
        {body}
      </Stack>
    </Paper>
  );
}
