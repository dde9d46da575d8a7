import { Anchor, Code, Paper, SimpleGrid, Stack, Text } from "@mantine/core";
import { Link, useParams } from "react-router";

import { useGetExportQuery } from "../../api/api";
import { asApiError } from "../../api/errors";
import { CopyValue } from "../../components/CopyValue";
import { ErrorAlert } from "../../components/ErrorAlert";
import { formatExactBytes, int64 } from "../../components/format";
import { PageLoader } from "../../components/Loading";
import { PageHeader } from "../../components/PageHeader";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import { Truncated } from "../../components/Truncated";
import type { ExportJson } from "../../gen/mlplane/v1/query_service_pb";
import { Breadcrumbs } from "../models/Breadcrumbs";
import { Fact } from "../models/ModelPage";
import { formatWords, granularityWords } from "./ExportsPage";

/** The asset view with this export's range and tags. */
function chartLink(e: ExportJson): string {
  const params = new URLSearchParams({ range: "custom", start: e.startTime ?? "", end: e.endTime ?? "" });
  if (e.tags?.length) params.set("tags", e.tags.join(","));
  return `/data/${encodeURIComponent(e.assetId ?? "")}?${params.toString()}`;
}

/** One export's manifest: what a model version cites as its training data. */
export default function ExportPage() {
  const { exportId = "" } = useParams();
  const query = useGetExportQuery(exportId);
  const crumbs = <Breadcrumbs root={{ label: "Exports", to: "/exports" }} items={[{ label: exportId }]} />;
  if (query.error) {
    return (
      <>
        {crumbs}
        <PageHeader title="Export" docTitle="Export" />
        <ErrorAlert error={asApiError(query.error)} onRetry={() => void query.refetch()} />
      </>
    );
  }
  const e = query.data;
  if (!e) return <PageLoader />;
  const rows = int64(e.rowCount);
  return (
    <>
      {crumbs}
      <PageHeader title={`Export of ${e.assetId ?? "an asset"}`} docTitle="Export" actions={<StatusBadge status={e.status} />} />
      <Paper withBorder radius="md" p="md">
        <SimpleGrid cols={{ base: 2, md: 3 }} spacing="md">
          <Fact label="Asset">
            <Truncated size="sm">{e.assetId ?? "—"}</Truncated>
          </Fact>
          <Fact label="From">
            <Time value={e.startTime} />
          </Fact>
          <Fact label="To">
            <Time value={e.endTime} />
          </Fact>
          <Fact label="Rows">
            <span title={formatExactBytes(rows).replace("bytes", "rows")}>{new Intl.NumberFormat().format(rows)}</span>
          </Fact>
          <Fact label="Format">{formatWords(e.format)}</Fact>
          <Fact label="Resolution">{granularityWords(e)}</Fact>
          <Fact label="Exported by">
            <Truncated size="sm">{e.createdBy ?? "—"}</Truncated>
          </Fact>
          <Fact label="Started">
            <Time value={e.createTime} />
          </Fact>
          <Fact label="Tags">
            <Truncated size="sm">{(e.tags ?? []).join(", ") || "all"}</Truncated>
          </Fact>
        </SimpleGrid>
        <Stack gap="xs" mt="md">
          <Fact label="Export ID">
            <CopyValue value={e.exportId ?? exportId} label="export id" />
          </Fact>
          <Fact label="SHA-256 of the exported bytes">
            {e.sha256 ? <CopyValue value={e.sha256} label="SHA-256" /> : <Text size="sm" c="dimmed">Not final yet</Text>}
          </Fact>
          {e.format === "CSV" && e.sha256 && (
            <Text size="sm" c="dimmed">
              The downloaded CSV file hashes to this: check it with <Code>sha256sum {`${e.assetId ?? ""}-${(e.exportId ?? exportId).slice(0, 8)}.csv`}</Code>.
            </Text>
          )}
          {e.assetId && e.startTime && e.endTime && (
            <Anchor component={Link} to={chartLink(e)} size="sm">
              Chart this range
            </Anchor>
          )}
        </Stack>
      </Paper>
    </>
  );
}
