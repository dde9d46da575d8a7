import { Text, type TextProps } from "@mantine/core";
import type { ReactNode } from "react";

/** One line that ends in "…" when it does not fit; the whole text on hover. */
export function Truncated({ children, title, ...props }: TextProps & { children: ReactNode; title?: string }) {
  const full = title ?? (typeof children === "string" ? children : undefined);
  return (
    <Text truncate="end" title={full} {...props} style={{ minWidth: 0, ...(props.style as object | undefined) }}>
      {children}
    </Text>
  );
}
