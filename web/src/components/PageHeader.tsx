import { Group, Stack, Title } from "@mantine/core";
import { type ReactNode, useEffect, useRef } from "react";

/**
 * The page's heading, focused when the page opens so that screen readers announce the new
 * page and keyboard users start from its top; it also sets the document title.
 */
export function PageHeader({
  title,
  docTitle,
  actions,
  children,
}: {
  title: ReactNode;
  docTitle: string;
  actions?: ReactNode;
  children?: ReactNode;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${docTitle} · mlplane`;
    heading.current?.focus({ preventScroll: true });
  }, [docTitle]);
  return (
    <Stack gap={4} mb="lg">
      <Group justify="space-between" align="flex-start" wrap="wrap" gap="sm">
        <Title
          order={1}
          size="h2"
          ref={heading}
          tabIndex={-1}
          style={{ outline: "none", minWidth: 0, overflowWrap: "anywhere", flex: "1 1 16rem" }}
        >
          {title}
        </Title>
        {actions && (
          <Group gap="xs" wrap="wrap">
            {actions}
          </Group>
        )}
      </Group>
      {children}
    </Stack>
  );
}
