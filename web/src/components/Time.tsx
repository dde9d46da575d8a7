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

/** The same in one plain element (UTC in its title), for long lists. */
export function TimeText({ value, className }: { value: string | undefined; className?: string }) {
  if (!value) return <span>—</span>;
  return (
    <time dateTime={value} title={formatUtc(value)} className={className}>
      {formatLocal(value)}
    </time>
  );
}
