// Lit vertex colours for the sample's chunk meshes (each vertex carries its cube's colour), in
// both the Universal Render Pipeline (the default of Unity 6's 3D template) and the built-in
// pipeline: Unity uses the first SubShader that fits the active pipeline, so URP takes the HLSL
// one below (vertex colour times the main light's Lambert plus the probe ambient) and the
// built-in pipeline, which skips SubShaders tagged for another pipeline, takes the surface shader.
// In URP the chunks are drawn by Forward, Forward+ and Deferred renderers (UniversalForwardOnly)
// and are in the depth and depth-normals textures; they receive no shadows, and whether they cast
// any (through the Fallback's shadow caster) is not checked.
// PackageRequirements (2021.2+) keeps a project without URP from compiling, and failing on, the
// URP includes. HDRP is not covered: there give CubeWalkSample's Chunk Material an HDRP material
// that shows vertex colours.
Shader "CubeWalk/VertexColorLit"
{
    SubShader
    {
        PackageRequirements { "com.unity.render-pipelines.universal" }
        Tags { "RenderType" = "Opaque" "RenderPipeline" = "UniversalPipeline" "Queue" = "Geometry" }

        Pass
        {
            Name "ForwardLit"
            // UniversalForwardOnly, not UniversalForward: a Deferred renderer draws such a pass in
            // its forward step; it skips a UniversalForward pass that has no GBuffer pass beside it.
            Tags { "LightMode" = "UniversalForwardOnly" }

            HLSLPROGRAM
            #pragma vertex vert
            #pragma fragment frag
            #pragma multi_compile_fog
            #include "Packages/com.unity.render-pipelines.universal/ShaderLibrary/Core.hlsl"
            #include "Packages/com.unity.render-pipelines.universal/ShaderLibrary/Lighting.hlsl"

            struct Attributes
            {
                float4 positionOS : POSITION;
                float3 normalOS : NORMAL;
                half4 color : COLOR;
            };

            struct Varyings
            {
                float4 positionCS : SV_POSITION;
                float3 normalWS : TEXCOORD0;
                half fogFactor : TEXCOORD1;
                half4 color : COLOR;
            };

            Varyings vert(Attributes input)
            {
                Varyings output;
                VertexPositionInputs position = GetVertexPositionInputs(input.positionOS.xyz);
                output.positionCS = position.positionCS;
                output.normalWS = TransformObjectToWorldNormal(input.normalOS);
                output.fogFactor = ComputeFogFactor(position.positionCS.z);
                output.color = input.color;
                return output;
            }

            half4 frag(Varyings input) : SV_Target
            {
                half3 normal = normalize(input.normalWS);
                Light light = GetMainLight();
                half3 lit = light.color * saturate(dot(normal, light.direction)) + SampleSH(normal);
                half3 color = MixFog(input.color.rgb * lit, input.fogFactor);
                return half4(color, 1);
            }
            ENDHLSL
        }

        // Depth for URP's depth prepass and depth priming (without it the chunks could vanish
        // where the forward pass tests depth for equality).
        Pass
        {
            Name "DepthOnly"
            Tags { "LightMode" = "DepthOnly" }
            ZWrite On
            ColorMask R

            HLSLPROGRAM
            #pragma vertex vert
            #pragma fragment frag
            #include "Packages/com.unity.render-pipelines.universal/ShaderLibrary/Core.hlsl"

            float4 vert(float4 positionOS : POSITION) : SV_POSITION
            {
                return TransformObjectToHClip(positionOS.xyz);
            }

            half frag(float4 positionCS : SV_POSITION) : SV_Target { return 0; }
            ENDHLSL
        }

        // Depth and normals for URP's depth-normals prepass (screen-space ambient occlusion, and
        // depth priming with it on): without it the chunks are missing from that texture and can
        // vanish where the forward pass tests depth for equality. The normal is written the way
        // URP's own Unlit and SimpleLit DepthNormals passes write it (URP 12+).
        Pass
        {
            Name "DepthNormals"
            Tags { "LightMode" = "DepthNormals" }
            ZWrite On

            HLSLPROGRAM
            #pragma vertex vert
            #pragma fragment frag
            #pragma multi_compile_fragment _ _GBUFFER_NORMALS_OCT
            #include "Packages/com.unity.render-pipelines.universal/ShaderLibrary/Core.hlsl"

            struct Attributes
            {
                float4 positionOS : POSITION;
                float3 normalOS : NORMAL;
            };

            struct Varyings
            {
                float4 positionCS : SV_POSITION;
                float3 normalWS : TEXCOORD0;
            };

            Varyings vert(Attributes input)
            {
                Varyings output;
                output.positionCS = TransformObjectToHClip(input.positionOS.xyz);
                output.normalWS = TransformObjectToWorldNormal(input.normalOS);
                return output;
            }

            half4 frag(Varyings input) : SV_Target
            {
            #if defined(_GBUFFER_NORMALS_OCT)
                // The Deferred renderer's accurate G-buffer normals: octahedron-encoded.
                float3 normalWS = normalize(input.normalWS);
                float2 remapped = saturate(PackNormalOctQuadEncode(normalWS) * 0.5 + 0.5);
                return half4(PackFloat2To888(remapped), 0.0);
            #else
                return half4(NormalizeNormalPerPixel(input.normalWS), 0.0);
            #endif
            }
            ENDHLSL
        }
    }

    // The built-in render pipeline.
    SubShader
    {
        Tags { "RenderType" = "Opaque" }
        CGPROGRAM
        #pragma surface surf Lambert
        struct Input { float4 color : COLOR; };
        void surf(Input IN, inout SurfaceOutput o) { o.Albedo = IN.color.rgb; }
        ENDCG
    }
    Fallback "Diffuse"
}
