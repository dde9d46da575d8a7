import { Anchor, Breadcrumbs as MantineBreadcrumbs, Text } from "@mantine/core";
import { Link } from "react-router";

export interface Crumb {
  label: string;
  to?: string;
}

/** Models › name › vN; long names are cut short with the whole name on hover. */
export function Breadcrumbs({ items, root = { label: "Models", to: "/models" } }: { items: Crumb[]; root?: Crumb }) {
  const all = [root, ...items];
  return (
    <nav aria-label="Breadcrumb">
      <MantineBreadcrumbs mb="xs" separatorMargin={6} style={{ flexWrap: "wrap", minWidth: 0 }}>
        {all.map((item, i) =>
          item.to && i < all.length - 1 ? (
            <Anchor key={item.label + String(i)} component={Link} to={item.to} size="sm" truncate="end" maw={280} title={item.label}>
              {item.label}
            </Anchor>
          ) : (
            <Text key={item.label + String(i)} size="sm" c="dimmed" truncate="end" maw={280} title={item.label} aria-current="page">
              {item.label}
            </Text>
          ),
        )}
      </MantineBreadcrumbs>
    </nav>
  );
}
