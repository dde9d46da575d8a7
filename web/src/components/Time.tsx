import { Tooltip } from "@mantine/core";

import { formatLocal, formatUtc } from "./format";

/** A time in the user's zone; UTC on hover or focus. */
export function Time({ value, withSeconds = false }: { value: string | undefined; withSeconds?: boolean }) {
  if (!value) return <span>—</span>;
  return (
    <Tooltip label={formatUtc(value)} openDelay={300} withArrow>
      <time dateTime={value} style={{ whiteSpace: "nowrap" }}>
        {formatLocal(value, withSeconds)}
      </time>
    </Tooltip>
  );
}
