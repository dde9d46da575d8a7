import { Tooltip } from "@mantine/core";

import { formatBytes, formatExactBytes } from "./format";

/** A size in binary units; the exact byte count on hover. */
export function Bytes({ value }: { value: number }) {
  return (
    <Tooltip label={formatExactBytes(value)} openDelay={300} withArrow>
      <span style={{ whiteSpace: "nowrap" }}>{formatBytes(value)}</span>
    </Tooltip>
  );
}
