import { Skeleton } from "@mantine/core";

import { useGetModelVersionQuery } from "../../api/api";
import { StatusBadge } from "../../components/StatusBadge";

/**
 * The status of a model's newest version. ListModels does not carry it, so each row asks
 * for its newest version (cached, and updated at once by an upload or a submission).
 */
export function LatestStatus({ modelId, version }: { modelId: string; version: string }) {
  const { data, isLoading, isError } = useGetModelVersionQuery({ modelId, version }, { skip: !modelId || !version });
  if (isLoading) return <Skeleton height={20} width={110} radius="sm" aria-label="Loading status" />;
  if (isError || !data) return <span aria-label="Status unknown">—</span>;
  return <StatusBadge status={data.status} />;
}
